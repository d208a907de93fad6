import Foundation
import QieImaging
import QieProviders
import Testing

private let shapes: [(String, PixelSize)] = [
    ("square", PixelSize(width: 2000, height: 2000)),
    ("4:3", PixelSize(width: 4000, height: 3000)),
    ("3:4", PixelSize(width: 3000, height: 4000)),
    ("16:9", PixelSize(width: 1920, height: 1080)),
    ("9:16", PixelSize(width: 1080, height: 1920)),
    ("21:9", PixelSize(width: 2520, height: 1080)),
    ("1:3", PixelSize(width: 600, height: 1800)),
    ("tiny", PixelSize(width: 32, height: 24)),
    ("huge", PixelSize(width: 12000, height: 8000)),
]

@Suite("Size planner")
struct PlannerTests {
    @Test("RunPod 2511 picks the listed size closest in shape", arguments: zip(shapes.map(\.0), [
        "1280x1280", "1536x1080", "1024x1280", "1536x1080", "1024x1280", "1536x1080", "1024x1280", "1536x1080", "1536x1080",
    ]))
    func runpodFixed(_ shape: String, _ expected: String) throws {
        let input = shapes.first { $0.0 == shape }!.1
        let plan = try SizePlanner.plan(input: input, for: .runpodQwenImageEdit2511)
        #expect(plan.target.description == expected, "\(shape)")
        #expect(plan.fields == [SizeField(name: "size", value: expected.replacingOccurrences(of: "x", with: "*"))])
        #expect(plan.geometry.output == plan.target)
    }

    @Test("4:3 is a hair closer to 1536*1080 than to 1280*1024 in log ratio: 48 px of padding each side")
    func runpodPadding() throws {
        let plan = try SizePlanner.plan(input: PixelSize(width: 4000, height: 3000), for: .runpodQwenImageEdit2511)
        #expect(plan.target == PixelSize(width: 1536, height: 1080))
        #expect(plan.geometry.resized == PixelSize(width: 1440, height: 1080))
        #expect(plan.geometry.padding == Padding(top: 0, right: 48, bottom: 0, left: 48))
        #expect(abs(plan.paddingFraction - 0.0625) < 1e-9)
        // A result returned at twice the size: the content is found at twice the offsets.
        #expect(plan.restoreCrop(inResultOf: PixelSize(width: 3072, height: 2160)) == PixelRect(x: 96, y: 0, width: 2880, height: 2160))
    }

    @Test("Oxen picks the closest of its seven aspect ratios, at about one megapixel", arguments: zip(shapes.map(\.0), [
        "1:1", "4:3", "3:4", "16:9", "9:16", "16:9", "9:16", "4:3", "3:2",
    ]))
    func oxenRatios(_ shape: String, _ expected: String) throws {
        let input = shapes.first { $0.0 == shape }!.1
        let plan = try SizePlanner.plan(input: input, for: .oxenQwenImageEdit2511)
        #expect(plan.fields == [SizeField(name: "aspect_ratio", value: expected)], "\(shape)")
        #expect(plan.target.width % 16 == 0 && plan.target.height % 16 == 0)
        #expect(abs(plan.target.megapixels - 1.048576) < 0.05)
    }

    @Test("Lumenfall picks from its 1K table and sends size WxH", arguments: zip(shapes.map(\.0), [
        "1024x1024", "1183x887", "887x1182", "1365x768", "768x1365", "1365x768", "768x1365", "1183x887", "1183x887",
    ]))
    func lumenfallTable(_ shape: String, _ expected: String) throws {
        let input = shapes.first { $0.0 == shape }!.1
        let plan = try SizePlanner.plan(input: input, for: .lumenfallQwenImageEdit2511)
        #expect(plan.fields == [SizeField(name: "size", value: expected)], "\(shape)")
    }

    @Test("Free-size endpoints plan about one megapixel at the input's shape, sides a multiple of 16", arguments: shapes.map(\.1))
    func freeSizes(_ input: PixelSize) throws {
        for profile in [ProviderProfile.runflowQwenImageEdit2511, .runpodQwenImageEdit] {
            let plan = try SizePlanner.plan(input: input, for: profile)
            #expect(plan.fields.isEmpty)
            #expect(plan.target.width % 16 == 0 && plan.target.height % 16 == 0)
            #expect(abs(plan.target.megapixels - 1.048576) < 0.06, "\(input) -> \(plan.target)")
            #expect(abs(log(plan.target.aspectRatio / input.aspectRatio)) < 0.03, "\(input) -> \(plan.target)")
            #expect(plan.paddingFraction < 0.03)
        }
        #expect(SizePlanner.freeSize(ratio: 1) == PixelSize(width: 1024, height: 1024))
        #expect(SizePlanner.freeSize(ratio: 16.0 / 9) == PixelSize(width: 1360, height: 768))
    }

    @Test("Ties go to the larger area: a square input picks 1280*1280 over 1024*1024")
    func ties() throws {
        let plan = try SizePlanner.plan(input: PixelSize(width: 500, height: 500), for: .runpodQwenImageEdit2511)
        #expect(plan.target == PixelSize(width: 1280, height: 1280))
    }

    @Test("Forced sizes, ratios and tiers; unsupported ones list what the endpoint accepts")
    func forced() throws {
        let input = PixelSize(width: 1000, height: 1000)
        let forced = try SizePlanner.plan(
            input: input, for: .runpodQwenImageEdit2511, request: .size(PixelSize(width: 1536, height: 1080)), fit: .cover)
        #expect(forced.target == PixelSize(width: 1536, height: 1080) && forced.fit == .cover)
        #expect(forced.geometry.crop != nil && forced.paddingFraction == 0)

        let error = #expect(throws: ProvidersError.self) {
            try SizePlanner.plan(input: input, for: .runpodQwenImageEdit2511, request: .size(PixelSize(width: 1000, height: 1000)))
        }
        #expect(error?.kind == .unsupportedSize)
        #expect(error?.message.contains("does not take size 1000x1000; it accepts sizes 1024*1024, 1024*1280") == true)

        let oxen = try SizePlanner.plan(input: input, for: .oxenQwenImageEdit2511, request: .aspectRatio(AspectRatio(3, 2)))
        #expect(oxen.fields == [SizeField(name: "aspect_ratio", value: "3:2")])
        let oxenError = #expect(throws: ProvidersError.self) {
            try SizePlanner.plan(input: input, for: .oxenQwenImageEdit2511, request: .aspectRatio(AspectRatio(21, 9)))
        }
        #expect(oxenError?.message.contains("1:1, 16:9, 9:16, 4:3, 3:4, 3:2, 2:3") == true)

        let tier = try SizePlanner.plan(
            input: input, for: .lumenfallQwenImageEdit2511, request: .tier("1K", aspectRatio: AspectRatio(9, 16)))
        #expect(tier.target == PixelSize(width: 768, height: 1365))
        #expect(tier.fields == [SizeField(name: "aspect_ratio", value: "9:16"), SizeField(name: "resolution", value: "1K")])
        let tierError = #expect(throws: ProvidersError.self) {
            try SizePlanner.plan(input: input, for: .lumenfallQwenImageEdit2511, request: .tier("4K", aspectRatio: nil))
        }
        #expect(tierError?.message.contains("does not take resolution 4K") == true)
        let free = try SizePlanner.plan(input: input, for: .lumenfallQwenImageEdit2511, request: .size(PixelSize(width: 1920, height: 1080)))
        #expect(free.fields == [SizeField(name: "size", value: "1920x1080")])
    }

    @Test("Unknown providers list the known ones")
    func unknown() throws {
        #expect(try ProviderCatalog.profile(named: "RunPod").id == "runpod-qwen-image-edit-2511")
        let error = #expect(throws: ProvidersError.self) { try ProviderCatalog.profile(named: "midjourney") }
        #expect(error?.message.contains("oxen-qwen-image-edit-2511") == true)
    }
}

@Suite("Cost")
struct CostTests {
    @Test("RunPod 2511 is $0.02 per image")
    func runpod2511() {
        let one = CostEstimator.estimate(.runpodQwenImageEdit2511, outputSize: PixelSize(width: 1536, height: 1080))
        #expect(one.total == Decimal(string: "0.02"))
        let three = CostEstimator.estimate(.runpodQwenImageEdit2511, outputSize: PixelSize(width: 1024, height: 1024), images: 3)
        #expect(three.total == Decimal(string: "0.06"))
    }

    @Test("RunPod edit at 1024x1024 is $0.02097152, with the per-image reading beside it")
    func runpodEdit() {
        let estimate = CostEstimator.estimate(.runpodQwenImageEdit, outputSize: PixelSize(width: 1024, height: 1024))
        #expect(estimate.total == Decimal(string: "0.02097152"))
        #expect(estimate.alternativeTotal == Decimal(string: "0.02"))
        #expect(estimate.outputMegapixels == Decimal(string: "1.048576"))
    }

    @Test("Runflow at 1024x1280 is $0.0393216; rounding is a setting")
    func runflow() {
        let estimate = CostEstimator.estimate(.runflowQwenImageEdit2511, outputSize: PixelSize(width: 1024, height: 1280))
        #expect(estimate.total == Decimal(string: "0.0393216"))
        #expect(estimate.totalText == "$0.0393216")
        let rounded = CostEstimator.estimate(
            .runflowQwenImageEdit2511, outputSize: PixelSize(width: 1024, height: 1280), rounding: .whole)
        #expect(rounded.total == Decimal(string: "0.06"))
        let hundredth = CostEstimator.estimate(
            .runflowQwenImageEdit2511, outputSize: PixelSize(width: 1024, height: 1280), rounding: .hundredth)
        #expect(hundredth.total == Decimal(string: "0.0396"))
    }

    @Test("Unpublished prices are unknown, never $0, unless set")
    func unpublished() {
        let unknown = CostEstimator.estimate(.oxenQwenImageEdit2511, outputSize: PixelSize(width: 1024, height: 1024))
        #expect(unknown.total == nil && unknown.totalText == "unknown")
        let set = CostEstimator.estimate(
            .lumenfallQwenImageEdit2511, outputSize: PixelSize(width: 1024, height: 1024), images: 2,
            override: PriceOverride(perImage: Decimal(string: "0.015")))
        #expect(set.total == Decimal(string: "0.03"))
    }
}
