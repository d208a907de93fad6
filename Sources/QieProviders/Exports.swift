// Sizes, formats and geometry come from the C-free QieCore module;
// `import QieProviders` brings them along without linking libvips.
@_exported import QieCore
