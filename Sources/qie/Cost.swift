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

    @Flag(help: "One JSON object per file and a total object.")
    var json = false

    func validate() throws {
        if inputs.isEmpty { throw ValidationError("give at least one file or folder") }
        if numImages < 1 { throw ValidationError("--num-images must be at least 1, got \(numImages)") }
    }

    func run() throws {
        let profile = try endpoint.profile()
        var options = EditOptions(endpoint: endpoint.provider)
        options.size = try endpoint.sizeRequest(size: size)
        let override = try price.override()
        let rounding = try price.megapixelRounding()
        let (files, problems) = links.walk(inputs)
        for problem in problems { TextStream.standardError.write("error \(problem)\n") }

        var out = LineBuffer()
        var total = Decimal(0)
        var unknown = 0
        var priced = 0
        var failed = problems.count
        var inputMegapixels = 0.0
        var outputMegapixels = Decimal(0)
        if !json {
            out.add("file\tinput\tinput MP\toutput\toutput MP\timages\tcost (USD)")
        }
        for item in try Flags.validating({ try options.plan(files) }) {
            let file = item.input
            let path = DisplayPath.escape(file.path)
            switch item.plan {
            case .success(let (info, plan)):
                let estimate = CostEstimator.estimate(
                    profile, outputSize: plan.expectedOutput, images: numImages, override: override, rounding: rounding)
                priced += 1
                inputMegapixels += info.megapixels
                outputMegapixels += estimate.outputMegapixels * Decimal(numImages)
                if let cost = estimate.total { total += cost } else { unknown += 1 }
                if json {
                    out.add(
                        "{\"path\":\(jsonString(file.path)),\"input\":\"\(plan.input)\",\"inputMegapixels\":\(info.megapixels),\"output\":\"\(plan.expectedOutput)\",\"outputMegapixels\":\(estimate.outputMegapixels),\"images\":\(numImages),\"cost\":\(estimate.total.map { "\($0)" } ?? "null")}"
                    )
                } else {
                    out.add(
                        "\(path)\t\(plan.input)\t\(String(format: "%.2f", info.megapixels))\t\(plan.expectedOutput)\t\(estimate.outputMegapixels)\t\(numImages)\t\(estimate.totalText)"
                    )
                }
            case .failure(let error):
                if !item.skipped {
                    failed += 1
                    TextStream.standardError.write("error \(path): \(reason(error))\n")
                }
            }
        }
        let estimate = CostEstimator.estimate(profile, outputSize: PixelSize(width: 1, height: 1), override: override)
        let rule = profile.pricing == .unpublished && estimate.total == nil ? priceSummary(profile.pricing) : estimate.rule
        let totalText = unknown == priced && priced > 0 ? "unknown" : "$\(total)" + (unknown > 0 ? " + \(unknown) unknown" : "")
        if json {
            out.add(
                "{\"total\":true,\"files\":\(priced),\"failed\":\(failed),\"outputImages\":\(priced * numImages),\"outputMegapixels\":\(outputMegapixels),\"cost\":\(unknown > 0 ? "null" : "\(total)"),\"rule\":\(jsonString(rule))}"
            )
        } else {
            out.add(
                "total\t\(priced) files\t\(String(format: "%.2f", inputMegapixels))\t\(priced * numImages) images\t\(outputMegapixels)\t\(priced * numImages)\t\(totalText)"
            )
            out.add("priced at \(rule) on \(profile.id)")
        }
        out.flush()
        if failed > 0 { throw ExitCode(1) }
    }

    private func jsonString(_ text: String) -> String {
        var sink = DataSink()
        try? JSONValue.string(text).write(to: &sink)
        return String(decoding: sink.data, as: UTF8.self)
    }
}
