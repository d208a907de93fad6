import Foundation
import QieImaging
import Testing

enum Fixture {
    static func path(_ name: String) -> String {
        guard let url = Bundle.module.url(forResource: name, withExtension: nil, subdirectory: "Fixtures") else {
            fatalError("missing test fixture \(name)")
        }
        return url.path
    }

    static func data(_ name: String) throws -> Data {
        try Data(contentsOf: URL(fileURLWithPath: path(name)))
    }
}

/// Builds images in memory for tests.
enum Make {
    /// A solid image, or one with `paint` choosing each pixel.
    static func pixels(
        _ width: Int, _ height: Int, channels: Int = 3, paint: (Int, Int) -> [UInt8]
    ) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(width * height * channels)
        for y in 0..<height {
            for x in 0..<width { bytes += paint(x, y) }
        }
        return bytes
    }

    static func encoded(
        _ width: Int, _ height: Int, channels: Int = 3, format: OutputFormat, quality: Int? = nil,
        paint: (Int, Int) -> [UInt8]
    ) throws -> Data {
        let image = try Image(
            pixels: pixels(width, height, channels: channels, paint: paint),
            size: PixelSize(width: width, height: height), channels: channels)
        return try image.encoded(EncodeOptions(format: format, quality: quality))
    }

    static func solid(_ width: Int, _ height: Int, _ colour: [UInt8], format: OutputFormat) throws -> Data {
        try encoded(width, height, channels: colour.count, format: format) { _, _ in colour }
    }
}

/// PNG chunks with real CRCs, for hand-made headers.
enum PNGBytes {
    static let signature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]

    static func chunk(_ type: String, _ payload: [UInt8]) -> [UInt8] {
        let typeBytes = Array(type.utf8)
        return be32(UInt32(payload.count)) + typeBytes + payload + be32(crc32(typeBytes + payload))
    }

    static func ihdr(width: UInt32, height: UInt32, bitDepth: UInt8 = 8, colourType: UInt8 = 2) -> [UInt8] {
        chunk("IHDR", be32(width) + be32(height) + [bitDepth, colourType, 0, 0, 0])
    }

    static func be32(_ value: UInt32) -> [UInt8] {
        [UInt8(value >> 24), UInt8(value >> 16 & 0xFF), UInt8(value >> 8 & 0xFF), UInt8(value & 0xFF)]
    }

    static func crc32(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes {
            crc ^= UInt32(byte)
            for _ in 0..<8 { crc = (crc & 1) != 0 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
        }
        return crc ^ 0xFFFF_FFFF
    }

    /// Offsets of each chunk (length field) in a PNG.
    static func chunks(in data: [UInt8]) -> [(type: String, offset: Int, length: Int)] {
        var result: [(String, Int, Int)] = []
        var offset = 8
        while offset + 8 <= data.count {
            let length = Int(data[offset]) << 24 | Int(data[offset + 1]) << 16 | Int(data[offset + 2]) << 8
                | Int(data[offset + 3])
            let type = String(decoding: data[offset + 4..<offset + 8], as: UTF8.self)
            result.append((type, offset, length))
            offset += 12 + length
        }
        return result
    }
}

/// Asserts a pixel is within `tolerance` of `expected` on every channel.
func expectPixel(
    _ image: Image, _ x: Int, _ y: Int, _ expected: [UInt8], tolerance: Int = 12,
    sourceLocation: SourceLocation = #_sourceLocation
) throws {
    let actual = try image.pixel(x: x, y: y)
    let close =
        actual.count == expected.count
        && zip(actual, expected).allSatisfy { abs(Int($0) - Int($1)) <= tolerance }
    #expect(close, "pixel \(x),\(y) is \(actual), expected \(expected) ±\(tolerance)", sourceLocation: sourceLocation)
}

func bytesContain(_ data: Data, _ text: String) -> Bool {
    data.range(of: Data(text.utf8)) != nil
}
