import Control

/// One control request line from any local user who can reach the socket:
/// decoding either succeeds or gives an error response; it never traps, a
/// success re-encodes as a response line, and the decoded command survives
/// its own encoding (the CLI's way of building requests) unchanged.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzControl(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let line = UnsafeBufferPointer(start: data, count: size)
    switch ControlRequest.decode(line) {
    case .success(let request):
        _ = ControlResponse.success(id: request.id, .null).line
        let command = request.command
        let again = try? ControlCommand(op: command.operation.rawValue, args: command.arguments)
        precondition(again == command, "\(command) does not survive its encoding")
    case .failure(let rejected):
        _ = ControlResponse.failure(id: rejected.id, rejected.error).line
    }
    return 0
}
