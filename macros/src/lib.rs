//! Procedural macros for Hearth apps.
