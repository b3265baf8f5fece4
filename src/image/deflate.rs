//! Raw deflate of whole chunks with the vendored libdeflate compressor (vendor/libdeflate, compiled
//! by build.rs, its symbols prefixed `scratchpack_`).
//!
//! Owns every call into that C code: nothing outside this module sees a raw pointer or `unsafe`.
//! Each chunk is compressed on its own, without history from earlier chunks. A chunk that is not
//! the last ends on a sync-flush marker (an empty stored block, as zlib's `Z_SYNC_FLUSH` writes)
//! instead of a final block, so chunks compressed apart, even on different threads, join into one
//! deflate stream; the last chunk ends it. The output depends only on the input, the level and
//! `last`: libdeflate's compressor picks no code path by CPU features at run time.

use std::ffi::{c_int, c_void};
use std::io;
use std::ptr::NonNull;

/// libdeflate's `struct libdeflate_compressor`, only ever behind a pointer.
#[repr(C)]
struct RawCompressor {
    _opaque: [u8; 0],
}

extern "C" {
    #[link_name = "scratchpack_libdeflate_alloc_compressor"]
    fn libdeflate_alloc_compressor(compression_level: c_int) -> *mut RawCompressor;
    #[link_name = "scratchpack_libdeflate_free_compressor"]
    fn libdeflate_free_compressor(compressor: *mut RawCompressor);
    #[link_name = "scratchpack_libdeflate_deflate_compress_bound"]
    fn libdeflate_deflate_compress_bound(compressor: *mut RawCompressor, in_nbytes: usize) -> usize;
    /// The vendored patch's addition: `libdeflate_deflate_compress` when `last` is non-zero, else
    /// no final block and a sync-flush marker at the end.
    #[link_name = "scratchpack_libdeflate_deflate_compress_chunk"]
    fn libdeflate_deflate_compress_chunk(
        compressor: *mut RawCompressor,
        input: *const c_void,
        in_nbytes: usize,
        output: *mut c_void,
        out_nbytes_avail: usize,
        last: c_int,
    ) -> usize;
}

/// The most a sync-flush marker adds to libdeflate's bound: 3 bits, padding, `00 00 FF FF`.
const SYNC_MARKER_ROOM: usize = 5;
/// libdeflate's levels: 0 (stored blocks only) to 12 (slowest, smallest).
pub const MAX_LEVEL: u32 = 12;

/// One libdeflate compressor. Its buffers are large (hash tables, match finder), so it is made
/// once per thread and used for many chunks; each call starts from a clean state.
pub struct Compressor {
    raw: NonNull<RawCompressor>,
}

// SAFETY: the compressor is plain heap memory that only its calls touch, with no thread-local or
// global state; libdeflate documents that different threads may use different compressors. `&mut
// self` on every call keeps one compressor from being used by two threads at once (it is not Sync).
unsafe impl Send for Compressor {}

impl Compressor {
    /// A compressor at `level` (0 to [`MAX_LEVEL`]).
    pub fn new(level: u32) -> io::Result<Self> {
        if level > MAX_LEVEL {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("deflate level {level} is over {MAX_LEVEL}")));
        }
        // SAFETY: no pointer is passed; the level is in libdeflate's range, so NULL means only that
        // memory ran out.
        let raw = unsafe { libdeflate_alloc_compressor(level as c_int) };
        let raw = NonNull::new(raw).ok_or_else(|| io::Error::new(io::ErrorKind::OutOfMemory, "cannot allocate a deflate compressor"))?;
        Ok(Compressor { raw })
    }

    /// Replaces `out`'s contents with `data` as raw deflate: ending the stream when `last`, else
    /// ending on a sync-flush marker with no final block, ready for the next chunk to follow.
    pub fn compress_chunk(&mut self, data: &[u8], last: bool, out: &mut Vec<u8>) -> io::Result<()> {
        // SAFETY: `self.raw` is a live compressor (freed only in Drop); the bound reads nothing else.
        let bound = unsafe { libdeflate_deflate_compress_bound(self.raw.as_ptr(), data.len()) } + SYNC_MARKER_ROOM;
        out.clear();
        out.reserve(bound);
        // SAFETY: `self.raw` is live and `&mut self` makes this its only user. libdeflate reads
        // exactly `data.len()` bytes from `data` (none when empty, so a dangling pointer is fine)
        // and writes only within the `out.capacity()` bytes it is given, which `out` owns; the
        // spare capacity may be uninitialized, since it is only written.
        let written = unsafe {
            libdeflate_deflate_compress_chunk(
                self.raw.as_ptr(),
                data.as_ptr().cast(),
                data.len(),
                out.as_mut_ptr().cast(),
                out.capacity(),
                c_int::from(last),
            )
        };
        // 0 means the output did not fit: never with the bound above, but not undefined either.
        if written == 0 || written > out.capacity() {
            return Err(io::Error::other(format!("deflate output of {} bytes overflowed {} bytes", data.len(), out.capacity())));
        }
        // SAFETY: libdeflate wrote the first `written` bytes (its output is contiguous from the
        // start), and `written` is within the capacity.
        unsafe { out.set_len(written) };
        Ok(())
    }
}

impl Drop for Compressor {
    fn drop(&mut self) {
        // SAFETY: `self.raw` came from libdeflate_alloc_compressor and is freed once, here.
        unsafe { libdeflate_free_compressor(self.raw.as_ptr()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::compress::tests::sample;
    use flate2::{Decompress, FlushDecompress, Status};

    fn noise(len: usize) -> Vec<u8> {
        let mut state = 0x2545f4914f6cdd1du64;
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect()
    }

    fn chunk(level: u32, data: &[u8], last: bool) -> Vec<u8> {
        let mut out = Vec::new();
        Compressor::new(level).unwrap().compress_chunk(data, last, &mut out).unwrap();
        out
    }

    /// Raw inflate of `compressed` in one call: the bytes out and whether the stream ended.
    fn inflate(compressed: &[u8], expected_len: usize) -> (Vec<u8>, Status) {
        let mut inflater = Decompress::new(false);
        let mut out = Vec::with_capacity(expected_len + 1024);
        let status = inflater.decompress_vec(compressed, &mut out, FlushDecompress::Sync).unwrap();
        assert_eq!(inflater.total_in() as usize, compressed.len(), "every byte consumed");
        (out, status)
    }

    #[test]
    fn a_non_final_chunk_ends_on_a_sync_marker_without_ending_the_stream() {
        // Levels 0 (stored blocks), 1 (fastest), 2 and 6 (greedy, lazy), 12 (near-optimal); sizes
        // that go through the stored-only path for short input, and noise that makes stored blocks.
        for level in [0, 1, 2, 6, 9, 12] {
            for data in [Vec::new(), b"x".to_vec(), sample(10), sample(100), sample(200_000), noise(70_000)] {
                let out = chunk(level, &data, false);
                assert!(out.ends_with(&[0, 0, 0xff, 0xff]), "level {level}, {} bytes", data.len());
                let (back, status) = inflate(&out, data.len());
                assert_ne!(status, Status::StreamEnd, "level {level}, {} bytes: a final block", data.len());
                assert!(back == data, "level {level}, {} bytes: content differs", data.len());
            }
        }
    }

    #[test]
    fn a_final_chunk_ends_the_stream() {
        for level in [0, 2, 12] {
            for data in [Vec::new(), sample(1), sample(300_000)] {
                let out = chunk(level, &data, true);
                let (back, status) = inflate(&out, data.len());
                assert_eq!(status, Status::StreamEnd, "level {level}, {} bytes", data.len());
                assert!(back == data);
            }
        }
    }

    #[test]
    fn chunks_compressed_apart_join_into_one_stream() {
        for level in [1, 2, 9, 12] {
            let parts = [sample(150_000), noise(40_000), sample(33)];
            let mut joined = chunk(level, &parts[0], false);
            joined.extend(chunk(level, &parts[1], false));
            joined.extend(chunk(level, &parts[2], true));
            let (back, status) = inflate(&joined, 200_000);
            assert_eq!(status, Status::StreamEnd, "level {level}");
            assert!(back == parts.concat(), "level {level}: content differs");
        }
    }

    #[test]
    fn a_compressor_is_reused_without_carrying_state() {
        let mut compressor = Compressor::new(2).unwrap();
        let mut first = Vec::new();
        compressor.compress_chunk(&sample(100_000), false, &mut first).unwrap();
        let mut other = Vec::new();
        compressor.compress_chunk(&noise(100_000), true, &mut other).unwrap();
        let mut again = vec![1, 2, 3];
        compressor.compress_chunk(&sample(100_000), false, &mut again).unwrap();
        assert_eq!(first, again);
    }

    #[test]
    fn levels_over_twelve_are_refused() {
        assert_eq!(Compressor::new(13).err().map(|e| e.kind()), Some(io::ErrorKind::InvalidInput));
    }
}
