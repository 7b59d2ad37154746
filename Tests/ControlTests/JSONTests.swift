import JSONValue
import TestSupport
import Testing

@testable import Control

@Suite("JSON (RFC 8259): the control protocol's reader and writer")
struct JSONTests {
    @Test(
        "values parse to what they say",
        arguments: [
            ("null", JSON.null), ("true", .bool(true)), (" false ", .bool(false)), ("0", .number(0)),
            ("-12.5e2", .number(-1250)), ("\"a\\u00e9\\n\\\"\"", .string("aé\n\"")),
            ("\"\\ud83d\\ude00\"", .string("😀")),
            ("[1, [2], {}]", .array([.number(1), .array([.number(2)]), .object([:])])),
            ("{\"a\": {\"b\": null}}", .object(["a": .object(["b": .null])])), ("\"é😀\"", .string("é😀")),
        ])
    func parses(text: String, value: JSON) throws {
        #expect(try JSON.parse(text) == value)
    }

    @Test(
        "malformed input is refused with a reason",
        arguments: [
            ("", "unexpected end of input"), ("[1,]", "unexpected character"),
            ("01", "unexpected data after the value"),
            ("1.", "expected a digit"), ("-", "expected a digit"), ("\"abc", "unterminated string"),
            ("\"\\x\"", "invalid escape"), ("\"\\ud800\"", "unpaired surrogate"), ("\"\\udc00\"", "unpaired surrogate"),
            ("\"a\u{01}b\"", "control character in a string"), ("{\"a\":1,\"a\":2}", "duplicate key \"a\""),
            ("{a:1}", "expected a string key"), ("[1 2]", "expected ',' or ']'"), ("NaN", "unexpected character"),
            ("1e999", "number out of range"), ("tru", "unexpected character"),
            ("{} {}", "unexpected data after the value"),
        ])
    func refuses(text: String, reason: String) {
        #expect(throws: JSON.ParseError.self) { try JSON.parse(text) }
        do {
            _ = try JSON.parse(text)
        } catch {
            #expect(error.message == reason)
        }
    }

    @Test("invalid UTF-8 and nesting beyond the limit are refused")
    func limits() {
        #expect(throws: JSON.ParseError.self) { try JSON.parse([0x22, 0xC3, 0x28, 0x22]) }
        let deep = String(repeating: "[", count: JSON.maxDepth + 1) + String(repeating: "]", count: JSON.maxDepth + 1)
        #expect(throws: JSON.ParseError.self) { try JSON.parse(deep) }
        let ok = String(repeating: "[", count: JSON.maxDepth) + String(repeating: "]", count: JSON.maxDepth)
        #expect((try? JSON.parse(ok)) != nil)
    }

    @Test("writing: sorted keys, integers without a fraction, escapes that keep one value per line")
    func writes() throws {
        let value = JSON.object([
            "b": .array([.int(3), .number(0.5), .bool(false), .null]), "a": .string("line\nbreak\u{01}\u{2028}\"\\"),
        ])
        #expect(value.description == #"{"a":"line\nbreak\u0001\u2028\"\\","b":[3,0.5,false,null]}"#)
        #expect(!value.description.contains("\n"))
        #expect(try JSON.parse(value.description) == value)
    }

    @Test("random values survive a write-then-parse round trip")
    func roundTrip() throws {
        var random = SplitMix64(seed: 7)
        for _ in 0..<500 {
            let value = randomJSON(&random, depth: 0)
            #expect(try JSON.parse(value.description) == value)
        }
    }
}

func randomJSON(_ random: inout SplitMix64, depth: Int) -> JSON {
    switch Int.random(in: 0..<(depth > 4 ? 4 : 6), using: &random) {
    case 0: return .null
    case 1: return .bool(Bool.random(using: &random))
    case 2: return .number(Double(Int.random(in: -1_000_000...1_000_000, using: &random)) / 8)
    case 3:
        let scalars = (0..<Int.random(in: 0..<8, using: &random)).map { _ in
            Unicode.Scalar([0x22, 0x5C, 0x0A, 0x01, 0x41, 0xE9, 0x1F600, 0x2028].randomElement(using: &random)!)!
        }
        return .string(String(String.UnicodeScalarView(scalars)))
    case 4:
        return .array((0..<Int.random(in: 0..<4, using: &random)).map { _ in randomJSON(&random, depth: depth + 1) })
    default:
        var members: [String: JSON] = [:]
        for index in 0..<Int.random(in: 0..<4, using: &random) {
            members["k\(index)"] = randomJSON(&random, depth: depth + 1)
        }
        return .object(members)
    }
}
