/// The reference for previews: `pixels` (`width` x `height`, `channels`
/// interleaved 8-bit samples, rows top to bottom) shrunk to `size` by
/// averaging, each pixel out the mean of the whole pixels it covers (block
/// edges rounded down), rounded to the nearest level. Written plainly, in
/// doubles, to check the library's one pass against.
public func boxAverage(
    _ pixels: [UInt8], width: Int, height: Int, channels: Int, to size: (width: Int, height: Int)
) -> [UInt8] {
    var out: [UInt8] = []
    out.reserveCapacity(size.width * size.height * channels)
    for oy in 0..<size.height {
        let rows = (oy * height / size.height)..<((oy + 1) * height / size.height)
        for ox in 0..<size.width {
            let columns = (ox * width / size.width)..<((ox + 1) * width / size.width)
            for channel in 0..<channels {
                var sum = 0.0
                for y in rows {
                    for x in columns { sum += Double(pixels[(y * width + x) * channels + channel]) }
                }
                out.append(UInt8((sum / Double(rows.count * columns.count)).rounded()))
            }
        }
    }
    return out
}
