//! (Skeleton: filled by the sentinel change.)
