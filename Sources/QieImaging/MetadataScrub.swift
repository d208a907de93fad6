import Foundation

/// Removes metadata that savers add back on their own.
enum MetadataScrub {
    /// A JPEG without its APP1 segments (EXIF and XMP). Segments are walked up
    /// to the start of scan; anything malformed leaves the data unchanged.
    static func jpegWithoutAPP1(_ data: Data) -> Data {
        let bytes = [UInt8](data)
        guard bytes.count > 4, bytes[0] == 0xFF, bytes[1] == 0xD8 else { return data }
        var output: [UInt8] = [0xFF, 0xD8]
        output.reserveCapacity(bytes.count)
        var offset = 2
        while offset + 4 <= bytes.count {
            guard bytes[offset] == 0xFF else { return data }
            let marker = bytes[offset + 1]
            if marker == 0xDA {  // start of scan: the rest is image data
                output += bytes[offset...]
                return Data(output)
            }
            let length = Int(bytes[offset + 2]) << 8 | Int(bytes[offset + 3])
            let end = offset + 2 + length
            guard length >= 2, end <= bytes.count else { return data }
            if marker != 0xE1 { output += bytes[offset..<end] }
            offset = end
        }
        return data
    }
}
