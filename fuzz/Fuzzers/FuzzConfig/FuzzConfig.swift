import Config

/// Any bytes as a config file: parsed and validated, or refused with
/// located issues; never a trap (the config's own TOML parser included).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzConfig(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    do {
        let config = try DaemonConfig.parse(text, file: "fuzz.toml")
        _ = config.world.changes(from: .init())
    } catch {
        _ = error.description
    }
    return 0
}
