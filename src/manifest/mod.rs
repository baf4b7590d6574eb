//! Pod manifests: parsing (YAML/JSON, multi-document), Kubernetes defaults, validation with
//! field paths, and wasmhook's annotations. (Being written: issue 4.)
