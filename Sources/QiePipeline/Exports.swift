// The edit path's vocabulary comes with it: `import QiePipeline` is enough
// to configure and run edits (sizes and formats from QieCore, input files
// from QieFiles, restore modes from QieImaging, endpoints from QieProviders,
// endpoint errors from QieClient).
@_exported import QieClient
@_exported import QieCore
@_exported import QieFiles
@_exported import QieImaging
@_exported import QieProviders
@_exported import QieStore
