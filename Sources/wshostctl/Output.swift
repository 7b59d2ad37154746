import Control
import Glibc
import JSONValue

/// Human output: aligned tables and `key: value` blocks; `--json` prints the
/// daemon's result as it is (one line, stable field names).
enum Output {
    static func print(_ text: String) {
        Swift.print(text)
    }

    /// Text as it is (it carries its own line ends).
    static func raw(_ text: String) {
        Swift.print(text, terminator: "")
    }

    static func error(_ text: String) {
        flush()
        let bytes = Array("wshostctl: \(text)\n".utf8)
        _ = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
    }

    static func flush() { fflush(nil) }

    /// Columns padded to their widest cell; the last column is not padded.
    static func table(_ header: [String], _ rows: [[String]]) {
        let all = [header] + rows
        let widths = header.indices.map { column in
            all.map { $0.indices.contains(column) ? $0[column].count : 0 }.max() ?? 0
        }
        for row in all {
            var line = ""
            for (column, cell) in row.enumerated() {
                if column == row.count - 1 {
                    line += cell
                } else {
                    line += cell + String(repeating: " ", count: widths[column] - cell.count + 2)
                }
            }
            print(line)
        }
    }

    /// `key: value` lines with the keys aligned, in the given order.
    static func block(_ pairs: [(String, String)]) {
        let width = pairs.map(\.0.count).max() ?? 0
        for (key, value) in pairs {
            print(key + ":" + String(repeating: " ", count: width - key.count + 1) + value)
        }
    }

    /// A JSON value as a person reads it: strings bare, null as "-".
    static func text(_ value: JSON?) -> String {
        switch value {
        case nil, .null?: return "-"
        case .string(let text)?: return text.isEmpty ? "\"\"" : text
        case .array(let items)?: return items.isEmpty ? "-" : items.map { text($0) }.joined(separator: ",")
        case let other?: return other.description
        }
    }

    /// Seconds since the epoch as local ISO-8601 time (UTC).
    static func time(_ value: JSON?) -> String {
        guard let seconds = value?.doubleValue else { return "-" }
        var time = time_t(seconds)
        var parts = tm()
        gmtime_r(&time, &parts)
        let millis = Int((seconds - Double(Int(seconds))) * 1000)
        func two(_ n: Int32) -> String { n < 10 ? "0\(n)" : "\(n)" }
        let ms = millis < 10 ? "00\(millis)" : millis < 100 ? "0\(millis)" : "\(millis)"
        return
            "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)).\(ms)Z"
    }

    static func record(_ record: JSON) {
        var handling = text(record["handlingUser"])
        if record["handlingUserPinned"]?.boolValue == true {
            handling += " (pinned)"
        } else if let source = record["handlingUserSource"]?.stringValue {
            handling += " (automatic: \(source))"
        } else {
            handling += " (automatic)"
        }
        var state = text(record["state"])
        if record["retryAt"]?.doubleValue != nil { state += ", retry at \(time(record["retryAt"]))" }
        block([
            ("record", "\(text(record["session"]))/\(text(record["object"]))"),
            ("URL", text(record["url"])),
            ("HandlingUser", handling),
            ("AccessReason", text(record["accessReason"])),
            ("ConnectRetryInterval", "\(text(record["connectRetryInterval"]))s"),
            ("IsConnected", text(record["isConnected"])),
            ("Enabled", text(record["enabled"])),
            ("state", state),
            ("last error", text(record["lastError"])),
            ("connected at", time(record["connectedAt"])),
            ("disconnected at", time(record["disconnectedAt"])),
            ("messages in/out", "\(text(record["messagesIn"])) / \(text(record["messagesOut"]))"),
            ("bytes in/out", "\(text(record["bytesIn"])) / \(text(record["bytesOut"]))"),
            ("floods, dropped", "\(text(record["floods"])), \(text(record["dropped"]))"),
            ("sends refused (rate)", text(record["sendsRefused"])),
            ("compression", record["compressionSetting"]?.stringValue ?? "inherit ([websocket] compression)"),
            ("negotiated", record["compression"]?.stringValue ?? "-"),
        ])
    }

    static func reaction(_ reaction: JSON) -> [String] {
        let effect: String
        if reaction["echo"]?.boolValue == true {
            effect = "echo"
        } else if let template = reaction["send"]?.stringValue {
            effect = "send \(quoted(template))"
        } else {
            effect = "forward to \(text(reaction["forward"]))"
        }
        return [text(reaction["on"]), effect]
    }

    static func quoted(_ text: String) -> String { JSON.string(text).description }

    /// One event per line: seq, time, type, where, what.
    static func event(_ event: JSON) -> String {
        var line = "\(text(event["seq"])) \(time(event["time"])) \(text(event["type"]))"
        if let session = event["session"]?.stringValue {
            line += " \(session)" + (event["object"]?.stringValue.map { "/\($0)" } ?? "")
        }
        if let user = event["user"]?.stringValue { line += " user=\(user)" }
        var rest = event.objectValue ?? [:]
        for key in ["seq", "time", "type", "session", "object", "user"] { rest[key] = nil }
        for key in rest.keys.sorted() {
            let value = rest[key]!
            if case .string(let string) = value {
                line += " \(key)=\(quoted(string))"
            } else {
                line += " \(key)=\(value)"
            }
        }
        return line
    }

    static func prompt(_ prompt: JSON) -> String {
        """
        prompt \(text(prompt["prompt"])): \(text(prompt["session"]))/\(text(prompt["object"])) asks \(text(prompt["user"])) to allow \(text(prompt["hostPort"])) (\(text(prompt["scope"])))
          reason: \(text(prompt["reason"]))
          answer with: allow | deny | ignore  (or: \(text(prompt["prompt"])) allow)
        """
    }
}
