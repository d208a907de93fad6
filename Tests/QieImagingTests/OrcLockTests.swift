import Foundation
@testable import QieImaging
import Testing

@Suite("libvips' liborc code, built and freed on many threads")
struct OrcLockTests {
    @Test("With libvips 8.14 and liborc, the reduce, convolution and morphology free their compiled code under liborc's mutex")
    func freesAreLocked() throws {
        let version = ImagingRuntime.libvipsVersion.split(separator: ".").compactMap { Int($0) }
        let orc = FileManager.default.fileExists(atPath: "/usr/lib/x86_64-linux-gnu/liborc-0.4.so.0")
            || FileManager.default.fileExists(atPath: "/usr/lib/aarch64-linux-gnu/liborc-0.4.so.0")
        try #require(version.count >= 2)
        if version[0] == 8 && version[1] < 15 && orc {
            #expect(ImagingRuntime.orcFreesLocked == 3)
        } else if !orc {
            #expect(ImagingRuntime.orcFreesLocked == 0, "nothing to lock without liborc")
        }
    }

    @Test("Eight threads building and freeing Lanczos reduces at once, 1,600 in all, each image right")
    func concurrentReduces() async throws {
        let input = try Make.encoded(300, 200, format: .png) { x, y in [UInt8(x & 255), UInt8(y & 255), 90] }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for thread in 0..<8 {
                group.addTask {
                    try await ImagingRuntime.offload {
                        for i in 0..<200 {
                            // A different size each time: a reduce built and freed each time.
                            let size = PixelSize(width: 40 + (thread * 200 + i) % 97, height: 30 + i % 53)
                            let made = try ImageProcessor.prepare(
                                data: input, resize: ResizeOptions(size: size, fit: .fill), encode: EncodeOptions(format: .png))
                            guard made.size == size else { throw ImagingError(.processingFailed, "\(made.size) for \(size)") }
                        }
                    }
                }
            }
            try await group.waitForAll()
        }
    }
}
