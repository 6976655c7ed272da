package cardnet

// ErrDecoderPanicked marks an UnpackError that stands for a panic recovered
// in the field codecs: the fuzz targets treat it as a bug to report.
var ErrDecoderPanicked = errPanic
