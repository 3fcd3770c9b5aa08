//! (Skeleton: filled by the hec change.)
