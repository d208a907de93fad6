// The value types every image call takes (sizes, fit, formats, geometry)
// live in the C-free QieCore module; `import QieImaging` brings them along.
@_exported import QieCore

extension EncodeOptions {
    /// `validate()` as an imaging error, for calls that throw `ImagingError`.
    func checked() throws(ImagingError) {
        do { try validate() } catch { throw ImagingError(error) }
    }
}

extension PreviewOptions {
    /// `validate()` as an imaging error, for calls that throw `ImagingError`.
    func checked() throws(ImagingError) {
        do { try validate() } catch { throw ImagingError(error) }
    }
}

extension ResizeOptions {
    /// `validate(for:)` as an imaging error, for calls that throw `ImagingError`.
    func checked(for output: OutputFormat) throws(ImagingError) {
        do { try validate(for: output) } catch { throw ImagingError(error) }
    }
}
