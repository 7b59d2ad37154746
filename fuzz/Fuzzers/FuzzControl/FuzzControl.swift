import Control

/// One control request line from any local user who can reach the socket:
/// decoding either succeeds or gives an error response; it never traps, and
/// a success re-encodes as a response line.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzControl(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let line = UnsafeBufferPointer(start: data, count: size)
    switch ControlRequest.decode(line) {
    case .success(let request):
        _ = ControlResponse.success(id: request.id, .null).line
    case .failure(let rejected):
        _ = ControlResponse.failure(id: rejected.id, rejected.error).line
    }
    return 0
}
