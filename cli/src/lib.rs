//! The `multiproj` command-line interface.
