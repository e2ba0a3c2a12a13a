// Package manifest reads imaforge manifests (format version 1, Version): one
// YAML 1.2 file that says what goes into an image (sources, declared
// entries, overrides, excludes), how the image is written (image.output,
// compression, level, block_size, epoch, owner), the digest algorithm,
// which key signs which regular file (keys and first-match rules), the
// trust store the keys are checked against, the IMA policy fragments
// written into the image and the target kernel. The
// format, with every field, is documented in docs/manifest.md and
// described by the JSON Schema (draft 2020-12) that Schema returns;
// testdata/manifest/example.yaml uses every section.
//
// Load and Parse decode strictly: an unknown key, a value of the wrong
// type, an anchor or alias is an error, and every problem is reported at
// its place as "file:line:col: message" (Error, collected in an ErrorList
// whose kinds errors.Is can test: ErrInvalid, ErrMissing, ...). Patterns
// are globs over absolute image paths in github.com/bmatcuk/doublestar/v4
// syntax (Pattern). SetSourceDateEpoch applies SOURCE_DATE_EPOCH
// (https://reproducible-builds.org/specs/source-date-epoch/).
package manifest
