//! The lifecycle engine. (Being written: issue 6.)
