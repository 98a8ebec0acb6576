pub mod polygon;
pub mod rle;
pub mod trace;
