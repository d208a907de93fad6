import Foundation
import QieFiles
import QieImaging
import QieStore

/// `report.html` and `report.json` in the output folder: every job of the
/// ledger, with before / after thumbnails (small JPEGs in `report-thumbs/`,
/// made as each job finishes), prompt, endpoint, cost and error. The page is
/// one static file with relative links: it opens in a browser without a server.
public struct RunReport: Sendable {
    /// The page's file name in the output folder.
    public static let htmlName = "report.html"
    /// The JSON file's name in the output folder.
    public static let jsonName = "report.json"
    /// The folder of thumbnails, inside the output folder.
    public static let thumbnailFolder = "report-thumbs"
    /// Longest side of a thumbnail, in pixels.
    public static let thumbnailSide = 256

    /// One job as the report shows it.
    public struct Entry: Sendable, Codable, Equatable {
        /// The input file's path.
        public var input: String
        /// The output files written for it.
        public var outputs: [String]
        /// The job's state, as `qie status` names it (`JobState`).
        public var state: String
        /// What its money is: `none`, `at-risk` (it may have been billed) or `billed`.
        public var charge: String
        /// The id of the endpoint the job went to.
        public var endpoint: String
        /// The prompt sent.
        public var prompt: String
        /// The endpoint's id for the job, once it accepted it.
        public var requestID: String?
        /// The cost in USD, as decimal text; nil when unknown.
        public var costUSD: String?
        /// Whether the cost is the endpoint's own figure (else an estimate).
        public var costReported: Bool
        /// The job's last error, if any.
        public var error: String?
        /// The input's thumbnail, relative to the output folder.
        public var before: String?
        /// The result's thumbnail, relative to the output folder.
        public var after: String?
    }

    /// Counts and money over the whole run.
    public struct Totals: Sendable, Codable, Equatable {
        /// Jobs in the ledger.
        public var jobs: Int
        /// Jobs per state.
        public var byState: [String: Int]
        /// USD billed (reported, else estimated): jobs the endpoint accepted
        /// or answered, whether their results were written or lost, as
        /// decimal text.
        public var spentUSD: String
        /// USD that may have been billed: jobs sent without a usable answer
        /// (uncertain) or caught sending, as decimal text.
        public var atRiskUSD: String
        /// USD earlier attempts of jobs sent again may have been billed, as decimal text.
        public var earlierUSD: String
        /// Jobs whose money counts but whose cost is unknown.
        public var unpriced: Int
        /// Submissions sent, over all runs.
        public var submissions: Int
    }

    /// The store the report is made from.
    public let store: any RunStore
    /// The output folder, absolute; links under it are written relative.
    private let base: String
    private let folder: String

    /// The report of the run in `store`, whose thumbnails live under `folder`.
    public init(store: any RunStore, folder: String) {
        self.store = store
        self.folder = folder
        base = Self.absolute(folder)
    }

    /// The run's totals, read from the store now.
    public func totals() async throws -> Totals {
        let summary = try await store.summary()
        let money = summary.money
        return Totals(
            jobs: summary.jobs, byState: summary.byState, spentUSD: "\(money.billed)", atRiskUSD: "\(money.atRisk)",
            earlierUSD: "\(money.earlier)", unpriced: money.unpriced, submissions: summary.submissions)
    }

    /// Each job as an entry, a page of jobs in memory at a time.
    public func forEachEntry(_ body: (Entry) async throws -> Void) async throws {
        try await store.forEachJob { job in
            let names = Self.thumbnailNames(job: job.id ?? 0)
            func existing(_ name: String) -> String? {
                FileManager.default.fileExists(atPath: (folder as NSString).appendingPathComponent(name)) ? name : nil
            }
            try await body(
                Entry(
                    input: job.inputPath, outputs: job.outputPaths, state: job.state.rawValue,
                    charge: job.state.charge.rawValue, endpoint: job.endpoint, prompt: job.prompt, requestID: job.requestID,
                    costUSD: job.cost.map { "\($0)" },
                    costReported: job.reportedCost != nil, error: job.error, before: existing(names.before),
                    after: existing(names.after)))
        }
    }

    /// Where a job's thumbnails go, relative to the output folder.
    public static func thumbnailNames(job: Int64) -> (before: String, after: String) {
        ("\(thumbnailFolder)/\(job)-before.jpg", "\(thumbnailFolder)/\(job)-after.jpg")
    }

    /// A small JPEG of an image file, for the contact sheet: fitted inside
    /// `thumbnailSide` x `thumbnailSide`, never enlarged (as the results'
    /// previews are not), so a small input shows at its own size.
    public static func thumbnail(file: String) throws -> Data {
        try ImageProcessor.prepare(file: file) { info in (thumbnailResize(for: info), thumbnailEncode) }.data
    }

    /// A small JPEG of an image held in memory, as `thumbnail(file:)`.
    public static func thumbnail(data: Data) throws -> Data {
        try ImageProcessor.prepare(data: data, framedIn: nil) { info, _ in (thumbnailResize(for: info), thumbnailEncode) }.data
    }

    /// The contact sheet's thumbnails, as an edit makes them beside its
    /// results (`EditOptions.preview`): at most `thumbnailSide` a side, JPEG.
    public static let thumbnailPreview = PreviewOptions(side: thumbnailSide, encode: EncodeOptions(format: .jpeg, quality: 80))

    /// The box an image of `info`'s size is shrunk into, never enlarged.
    private static func thumbnailResize(for info: ImageInfo) -> ResizeOptions {
        ResizeOptions(size: thumbnailPreview.box(for: info.displaySize), fit: .inside, fill: .colour(.white))
    }
    private static var thumbnailEncode: EncodeOptions { thumbnailPreview.encode }

    /// Writes both files atomically into `output`, streaming: memory stays
    /// the same whatever the number of jobs.
    public func write(to output: OutputFolder) async throws {
        let totals = try await totals()
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let generated = Date().formatted(.iso8601)
        try await output.write(to: Self.jsonName, isPrivate: true) { (file: inout StreamedFile) async throws in
            try file.append("{\"generated\":\"\(generated)\",\"totals\":")
            try file.append(try encoder.encode(totals))
            try file.append(",\"entries\":[")
            var first = true
            try await forEachEntry { entry in
                try file.append(first ? "\n" : ",\n")
                first = false
                try file.append(try encoder.encode(entry))
            }
            try file.append("\n]}\n")
        }
        try await output.write(to: Self.htmlName, isPrivate: true) { (file: inout StreamedFile) async throws in
            try file.append(header(totals))
            try await forEachEntry { entry in try file.append(html(entry)) }
            try file.append("</body></html>\n")
        }
    }

    /// The contact sheet, whole (for small runs and tests).
    public func html() async throws -> String {
        var page = header(try await totals())
        try await forEachEntry { page += html($0) }
        return page + "</body></html>\n"
    }

    private func header(_ totals: Totals) -> String {
        let states = totals.byState.sorted { $0.key < $1.key }.map { "\($0.value) \(escape($0.key))" }.joined(separator: ", ")
        return """
            <!doctype html>
            <html lang="en"><head><meta charset="utf-8">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <title>qie report</title>
            <style>
            body { font: 14px/1.4 system-ui, sans-serif; margin: 16px; color: #222; background: #fafafa; }
            h1 { font-size: 18px; margin: 0 0 4px; }
            .totals { color: #555; margin-bottom: 12px; }
            .job { display: flex; gap: 12px; align-items: flex-start; background: #fff; border: 1px solid #ddd;
                   border-radius: 6px; padding: 8px; margin-bottom: 8px; }
            .job.failed, .job.lost, .job.uncertain { border-color: #d33; }
            .job.cancelled { border-color: #999; }
            .charge { color: #8a5a00; }
            figure { margin: 0; text-align: center; font-size: 11px; color: #777; }
            figure img { display: block; width: 200px; height: 150px; object-fit: contain; background: #eee; }
            .none { width: 200px; height: 150px; background: #eee; display: flex; align-items: center;
                    justify-content: center; color: #999; }
            .meta { flex: 1; min-width: 0; word-wrap: break-word; }
            .meta .name { font-weight: 600; }
            .error { color: #b00; }
            .state { display: inline-block; padding: 0 6px; border-radius: 3px; background: #eee; font-size: 12px; }
            </style></head><body>
            <h1>qie report</h1>
            <div class="totals">\(totals.jobs) job\(totals.jobs == 1 ? "" : "s"): \(states) &middot; spent $\(escape(totals.spentUSD))\
            \(totals.atRiskUSD != "0" ? " &middot; at risk $\(escape(totals.atRiskUSD)) (may have been billed)" : "")\
            \(totals.earlierUSD != "0" ? " &middot; earlier attempts $\(escape(totals.earlierUSD))" : "")\
            \(totals.unpriced > 0 ? " (+ \(totals.unpriced) unpriced)" : "") &middot; \(totals.submissions) submission\(totals.submissions == 1 ? "" : "s")</div>

            """
    }

    private func html(_ entry: Entry) -> String {
        var page = "<div class=\"job \(escape(entry.state))\">"
        page += figure(entry.before, caption: "before")
        page += figure(entry.after, caption: "after")
        page += "<div class=\"meta\"><div class=\"name\">\(escape(entry.input))</div>"
        page += "<div><span class=\"state\">\(escape(entry.state))</span> \(escape(entry.endpoint))"
        if let cost = entry.costUSD, entry.charge != JobState.Charge.none.rawValue {
            page += " &middot; $\(escape(cost))\(entry.costReported ? "" : " (estimated)")"
        }
        switch entry.state {
        case JobState.lost.rawValue: page += " &middot; <span class=\"charge\">paid, results lost</span>"
        case JobState.uncertain.rawValue, JobState.sending.rawValue:
            page += " &middot; <span class=\"charge\">may have been billed</span>"
        case JobState.cancelled.rawValue: page += " &middot; cancelled before it ran, not billed"
        default: break
        }
        if let id = entry.requestID { page += " &middot; job \(escape(id))" }
        page += "</div><div>\(escape(entry.prompt))</div>"
        for output in entry.outputs {
            page += "<div><a href=\"\(escape(link(output)))\">\(escape((output as NSString).lastPathComponent))</a></div>"
        }
        if let error = entry.error { page += "<div class=\"error\">\(escape(error))</div>" }
        return page + "</div></div>\n"
    }

    private func figure(_ path: String?, caption: String) -> String {
        guard let path else { return "<figure><div class=\"none\">no image</div>\(caption)</figure>" }
        // Thumbnails are named relative to the report's folder already.
        let source = path.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed) ?? path
        return "<figure><img src=\"\(escape(source))\" alt=\"\(caption)\" loading=\"lazy\">\(caption)</figure>"
    }

    /// A link that works from the report's folder: relative under it, a file URL elsewhere.
    private func link(_ path: String) -> String {
        let absolute = Self.absolute(path)
        let inside = absolute.hasPrefix(base + "/") ? String(absolute.dropFirst(base.count + 1)) : nil
        let target = inside ?? absolute
        let encoded = target.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed) ?? target
        return inside == nil ? "file://" + encoded : encoded
    }

    /// `path` made absolute against the current directory, standardised.
    private static func absolute(_ path: String) -> String {
        let full = path.hasPrefix("/") ? path : (FileManager.default.currentDirectoryPath as NSString).appendingPathComponent(path)
        return (full as NSString).standardizingPath
    }

    private func escape(_ text: String) -> String {
        var out = ""
        for character in text {
            switch character {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(character)
            }
        }
        return out
    }
}
