// The specification, rules 1-22, as the crate documentation shows it on docs.rs: the same
// file as the repository's `docs/spec.md`, so the two cannot drift apart.
#![doc = include_str!("../docs/spec.md")]
