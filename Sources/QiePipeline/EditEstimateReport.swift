import Foundation
import QieCore
import QieFiles
import QieProviders

/// An estimate as a document (`qie edit --dry-run --json` prints it, format
/// 1): each file's plan, price and the names it would be written to, and the
/// totals. `Codable`, so a tool reads back what qie wrote; amounts are USD as
/// decimal text, as in `qie status --json`.
public struct EditEstimateReport: Sendable, Codable, Equatable {
    /// The format version this qie writes.
    public static let currentFormat = 1

    /// What became of one file.
    public enum Status: String, Sendable, Codable {
        /// It would be sent.
        case planned
        /// It cannot be edited (`error` says why); the run would report it.
        case failed
        /// Not an image and not named like one, found in a folder: left out.
        case skipped
    }

    /// One file of the run.
    public struct File: Sendable, Codable, Equatable {
        /// The input's path, as walked.
        public var input: String
        /// Planned, failed or skipped.
        public var status: Status
        /// The size, fit, geometry and request fields it would be sent with, when planned.
        public var plan: SizePlan?
        /// Requests it needs (more than one where the endpoint has no count field).
        public var requests: Int
        /// Its estimated cost (all its requests), USD; nil when unpriced or not planned.
        public var costUSD: String?
        /// The prompt it would be sent with, when it has one.
        public var prompt: String?
        /// The files its results would be written to, relative to the output
        /// folder, in the format asked (else the endpoint's default).
        public var outputs: [String]
        /// Why it cannot be edited.
        public var error: String?
        /// The endpoint it would go to (with routing, the one ranked first for it), when planned.
        public var endpoint: String?

        /// A file of the report.
        public init(
            input: String, status: Status, plan: SizePlan? = nil, requests: Int, costUSD: String? = nil, prompt: String? = nil,
            outputs: [String] = [], error: String? = nil, endpoint: String? = nil
        ) {
            self.endpoint = endpoint
            self.input = input
            self.status = status
            self.plan = plan
            self.requests = requests
            self.costUSD = costUSD
            self.prompt = prompt
            self.outputs = outputs
            self.error = error
        }
    }

    /// An argument or folder entry that could not be walked.
    public struct Problem: Sendable, Codable, Equatable {
        /// The path.
        public var path: String
        /// Why.
        public var reason: String
    }

    /// The report's format version.
    public var format = Self.currentFormat
    /// The endpoint (profile id).
    public var endpoint: String
    /// Files planned.
    public var planned: Int
    /// Files that cannot be edited, and arguments that could not be walked.
    public var failed: Int
    /// Requests the run would send.
    public var requests: Int
    /// The estimated total of the priced files, USD; nil when none is priced.
    public var totalUSD: String?
    /// Planned files without a price.
    public var unpriced: Int
    /// Each file, in the order the run takes them.
    public var files: [File]
    /// Arguments or folder entries that could not be walked.
    public var problems: [Problem]
    /// The routing policy, when the run routes among endpoints.
    public var route: Routing.Policy?
    /// With routing, each endpoint as if every file went there, with what routing saves against it.
    public var endpoints: [CostReport.EndpointTotal]?

    /// The report of `estimate`; errors name settings as `naming` spells
    /// them (the command line says `--max-cost` where the library says `maxCost`).
    public init(_ estimate: EditEstimate, naming: (Setting) -> String = \.name) {
        endpoint = estimate.endpoint
        planned = estimate.planned
        failed = estimate.failed
        requests = estimate.requests
        unpriced = estimate.unpriced
        totalUSD = estimate.unpriced == estimate.planned && estimate.planned > 0 ? nil : "\(estimate.total)"
        files = estimate.items.map { item in
            var file = File(input: item.input.path, status: .planned, requests: item.requests, prompt: item.prompt)
            switch item.plan {
            case _ where item.skipped:
                file.status = .skipped
            case .success(let plan):
                file.plan = plan
                file.endpoint = item.endpoint
                file.costUSD = item.cost.map { "\($0)" }
                file.outputs = item.outputs
            case .failure(let error):
                file.status = .failed
                file.error = error.reason(naming: naming)
            }
            return file
        }
        problems = estimate.problems.map { Problem(path: $0.path, reason: $0.reason) }
        route = estimate.route
        endpoints = estimate.route == nil ? nil : estimate.endpoints
    }
}
