import ArgumentParser
import Foundation
import QieImaging
import QiePipeline
import QieFiles
import QieProviders

struct Cost: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Estimate what editing images on an endpoint costs, before anything is sent.",
        discussion: """
            Reads headers only, plans each image's output size and prices it by the endpoint's rule. \
            Endpoints that publish no price show "unknown" unless you set one.
            """)

    @Argument(help: "Image files or folders.", completion: .file())
    var inputs: [String]

    @OptionGroup var endpoint: ProviderOptions

    @OptionGroup var links: LinkOptions

    @Option(help: "Ask for this exact size (WxH).")
    var size: String?

    @Option(name: .customLong("num-images"), help: "Outputs per input image.")
    var numImages = Edit.defaults.options.numImages

    @OptionGroup var price: PriceOptions

    @Flag(help: "One JSON object per file, then the total's (CostReport in the library, format 1).")
    var json = false

    func validate() throws {
        if inputs.isEmpty { throw ValidationError("give at least one file or folder") }
    }

    func run() throws {
        var options = try endpoint.editOptions()
        options.size = try endpoint.sizeRequest(size: size)
        options.numImages = numImages
        options.price = try price.override()
        options.rounding = try price.megapixelRounding()
        try Flags.validating { try options.validatePlanning() }
        let (files, problems) = links.walk(inputs)
        for problem in problems { TextStream.standardError.write("error \(problem)\n") }
        let report = try Flags.validating { try CostReport(files, problems: problems.count, options: options, naming: Flags.name) }

        var out = LineBuffer()
        let routed = options.routing != nil
        if json {
            for file in report.files where file.status != .skipped { out.add(try JSONText.line(file)) }
            out.add(try JSONText.line(report.total))
        } else {
            out.add("file\tinput\tinput MP\toutput\toutput MP\timages\tcost (USD)" + (routed ? "\tendpoint" : ""))
        }
        var inputMegapixels = 0.0
        for file in report.files {
            let path = DisplayPath.escape(file.path)
            switch file.status {
            case .skipped:
                continue
            case .failed:
                TextStream.standardError.write("error \(path): \(file.error ?? "cannot be priced")\n")
            case .planned:
                inputMegapixels += file.inputMegapixels ?? 0
                if json { continue }
                let cost = file.costUSD.map { "$" + $0 } ?? "unknown"
                out.add(
                    "\(path)\t\(file.input ?? "")\t\(String(format: "%.2f", file.inputMegapixels ?? 0))\t\(file.output ?? "")\t\(file.outputMegapixels ?? "")\t\(file.images)\t\(cost)"
                        + (routed ? "\t\(file.endpoint ?? "")" : ""))
            }
        }
        if !json {
            let total = report.total
            let totalText =
                total.costUSD.map { "$" + $0 } ?? (total.pricedUSD.map { "$\($0) + \(total.unpriced) unknown" } ?? "unknown")
            out.add(
                "total\t\(total.files) files\t\(String(format: "%.2f", inputMegapixels))\t\(total.outputImages) images\t\(total.outputMegapixels)\t\(total.outputImages)\t\(totalText)"
            )
            if let route = total.route {
                for line in routeLines(total.endpoints, policy: route) { out.add(line) }
            } else if let one = total.endpoints.first {
                out.add("priced at \(ruleWords(one.rule)) on \(one.endpoint)")
            }
        }
        out.flush()
        if report.total.failed > 0 { throw ExitCode(1) }
    }
}
