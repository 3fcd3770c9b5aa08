//! (Skeleton: filled by the elasticsearch change.)
