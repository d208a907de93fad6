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

    /// A JPEG kept as it is but for its metadata: APP1-APP13 and APP15
    /// (EXIF, XMP, ICC, IPTC, maker data) and comments are removed, JFIF
    /// (APP0) and Adobe (APP14, which says how to read the colours) are kept.
    /// Nil when the segments are malformed or the data does not end with the
    /// end-of-image marker (cut short): such a file is decoded instead.
    static func jpegWithoutMetadata(_ data: Data) -> Data? {
        let bytes = [UInt8](data)
        guard bytes.count > 4, bytes[0] == 0xFF, bytes[1] == 0xD8 else { return nil }
        var end = bytes.count
        while end > 2, bytes[end - 1] == 0 { end -= 1 }  // padding some writers leave
        guard bytes[end - 2] == 0xFF, bytes[end - 1] == 0xD9 else { return nil }
        var output: [UInt8] = [0xFF, 0xD8]
        output.reserveCapacity(end)
        var offset = 2
        while offset + 4 <= end {
            guard bytes[offset] == 0xFF else { return nil }
            let marker = bytes[offset + 1]
            if marker == 0xFF {  // fill byte
                offset += 1
                continue
            }
            if marker == 0xDA {  // start of scan: the rest is image data
                output += bytes[offset..<end]
                return Data(output)
            }
            let length = Int(bytes[offset + 2]) << 8 | Int(bytes[offset + 3])
            let next = offset + 2 + length
            guard length >= 2, next <= end else { return nil }
            let metadata = (0xE1...0xED).contains(marker) || marker == 0xEF || marker == 0xFE
            if !metadata { output += bytes[offset..<next] }
            offset = next
        }
        return nil
    }
}
