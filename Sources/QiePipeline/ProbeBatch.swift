import Foundation
import QieFiles
import QieImaging
import Synchronization

/// Probes many files at once, results in input order.
public struct ProbeBatch: Sendable {
    /// The files to probe.
    public var files: [InputFile]
    /// Files probed at once (at least 1).
    public var concurrency: Int

    /// A batch over `files`, on every core by default.
    public init(files: [InputFile], concurrency: Int = ProcessInfo.processInfo.activeProcessorCount) {
        self.files = files
        self.concurrency = max(1, concurrency)
    }

    /// Each file's header, or why it could not be read, in the order of `files`.
    public func run() -> [Result<ImageInfo, ImagingError>] {
        let results = Mutex([Result<ImageInfo, ImagingError>?](repeating: nil, count: files.count))
        let next = Atomic<Int>(0)
        let chunk = 16
        DispatchQueue.concurrentPerform(iterations: min(concurrency, max(1, files.count))) { _ in
            while true {
                let start = next.wrappingAdd(chunk, ordering: .relaxed).oldValue
                guard start < files.count else { break }
                let end = min(files.count, start + chunk)
                var local: [Result<ImageInfo, ImagingError>] = []
                local.reserveCapacity(end - start)
                for index in start..<end {
                    let path = files[index].path
                    local.append(Result { () throws(ImagingError) in try ImageProbe.probe(file: path) })
                }
                results.withLock { all in
                    for (offset, result) in local.enumerated() { all[start + offset] = result }
                }
            }
        }
        return results.withLock { all in
            all.map { $0 ?? .failure(ImagingError(.unreadable, "not probed")) }
        }
    }
}
