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
    /// The vendored patch's other addition: at the greedy levels, a match longer than this puts
    /// only its first two positions into the match finder.
    #[link_name = "scratchpack_libdeflate_set_max_insert_length"]
    fn libdeflate_set_max_insert_length(compressor: *mut RawCompressor, max_insert_length: u32);
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
pub(crate) const MAX_LEVEL: u32 = 12;

/// How hard a compressor works: libdeflate's level, and for its greedy levels (2 to 4) the longest
/// match whose every position still goes into the match finder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Effort {
    pub(crate) level: u32,
    /// `None`: every position, as upstream libdeflate. `Some(n)`: a match longer than `n` bytes
    /// puts only its first two positions in, as zlib's fastest levels do (their
    /// `max_insert_length`); on redundant input that saves most of the match finder's work, for a
    /// slightly larger output.
    pub(crate) max_insert_length: Option<u32>,
}

impl Effort {
    /// libdeflate's `level`, as upstream has it.
    pub(crate) const fn level(level: u32) -> Self {
        Effort { level, max_insert_length: None }
    }

    /// An error unless the level is one libdeflate has (0 to [`MAX_LEVEL`]).
    pub(crate) fn check(self) -> io::Result<()> {
        if self.level > MAX_LEVEL {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("deflate level {} is over {MAX_LEVEL}", self.level)));
        }
        Ok(())
    }
}

/// One libdeflate compressor. Its buffers are large (hash tables, match finder), so it is made
/// once per thread and used for many chunks; each call starts from a clean state.
pub(crate) struct Compressor {
    raw: NonNull<RawCompressor>,
    effort: Effort,
}

// SAFETY: the compressor is plain heap memory that only its calls touch, with no thread-local or
// global state; libdeflate documents that different threads may use different compressors. `&mut
// self` on every call keeps one compressor from being used by two threads at once (it is not Sync).
unsafe impl Send for Compressor {}

impl Compressor {
    /// A compressor at `effort` (its level 0 to [`MAX_LEVEL`]).
    pub(crate) fn new(effort: Effort) -> io::Result<Self> {
        effort.check()?;
        let level = effort.level;
        // SAFETY: no pointer is passed; the level is in libdeflate's range, so NULL means only that
        // memory ran out.
        let raw = unsafe { libdeflate_alloc_compressor(level as c_int) };
        let raw = NonNull::new(raw).ok_or_else(|| io::Error::new(io::ErrorKind::OutOfMemory, "cannot allocate a deflate compressor"))?;
        if let Some(max_insert_length) = effort.max_insert_length {
            // SAFETY: `raw` is the live compressor just made; the call only sets one of its fields
            // (clamped to 258 by libdeflate).
            unsafe { libdeflate_set_max_insert_length(raw.as_ptr(), max_insert_length) };
        }
        Ok(Compressor { raw, effort })
    }

    /// The effort this compressor was made with.
    pub(crate) fn effort(&self) -> Effort {
        self.effort
    }

    /// Replaces `out`'s contents with `data` as raw deflate: ending the stream when `last`, else
    /// ending on a sync-flush marker with no final block, ready for the next chunk to follow.
    pub(crate) fn compress_chunk(&mut self, data: &[u8], last: bool, out: &mut Vec<u8>) -> io::Result<()> {
        out.clear();
        out.reserve(bound(data.len()));
        // SAFETY: `out` owns `out.capacity()` bytes from its pointer; the spare capacity may be
        // uninitialized, since it is only written.
        let written = unsafe { self.compress_raw(data, last, out.as_mut_ptr(), out.capacity())? };
        // SAFETY: libdeflate wrote the first `written` bytes (its output is contiguous from the
        // start), and `written` is within the capacity.
        unsafe { out.set_len(written) };
        Ok(())
    }

    /// [`Compressor::compress_chunk`] into the front of `out`, which must hold [`bound`] bytes
    /// for `data`; returns how many it wrote.
    pub(crate) fn compress_into(&mut self, data: &[u8], last: bool, out: &mut [u8]) -> io::Result<usize> {
        if out.len() < bound(data.len()) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} bytes of room for {} bytes of input", out.len(), data.len()),
            ));
        }
        // SAFETY: `out` is `out.len()` writable bytes.
        unsafe { self.compress_raw(data, last, out.as_mut_ptr(), out.len()) }
    }

    /// # Safety
    /// `out` must be valid for writes of `room` bytes.
    unsafe fn compress_raw(&mut self, data: &[u8], last: bool, out: *mut u8, room: usize) -> io::Result<usize> {
        // SAFETY: `self.raw` is live and `&mut self` makes this its only user. libdeflate reads
        // exactly `data.len()` bytes from `data` (none when empty, so a dangling pointer is fine)
        // and writes only within the `room` bytes it is given, which the caller vouches for.
        let written = unsafe {
            libdeflate_deflate_compress_chunk(self.raw.as_ptr(), data.as_ptr().cast(), data.len(), out.cast(), room, c_int::from(last))
        };
        // 0 means the output did not fit: never with the bound, but not undefined either.
        if written == 0 || written > room {
            return Err(io::Error::other(format!("deflate output of {} bytes overflowed {room} bytes", data.len())));
        }
        Ok(written)
    }
}

/// The most room a chunk of `len` bytes can take compressed, at any level, sync-flush marker
/// included.
pub(crate) fn bound(len: usize) -> usize {
    // SAFETY: libdeflate documents NULL as "any compressor": the bound of the worst level.
    let bound = unsafe { libdeflate_deflate_compress_bound(std::ptr::null_mut(), len) };
    bound + SYNC_MARKER_ROOM
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
        Compressor::new(Effort::level(level)).unwrap().compress_chunk(data, last, &mut out).unwrap();
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
        let mut compressor = Compressor::new(Effort { level: 2, max_insert_length: Some(8) }).unwrap();
        let mut first = Vec::new();
        compressor.compress_chunk(&sample(100_000), false, &mut first).unwrap();
        let mut other = Vec::new();
        compressor.compress_chunk(&noise(100_000), true, &mut other).unwrap();
        let mut again = vec![1, 2, 3];
        compressor.compress_chunk(&sample(100_000), false, &mut again).unwrap();
        assert_eq!(first, again);
    }

    /// Input whose matches are long and reach back across the 32 KiB window's slides: a few
    /// kilobytes of noise, repeated with small changes.
    fn long_repeats(len: usize) -> Vec<u8> {
        let unit = noise(3000);
        let mut data = Vec::with_capacity(len);
        let mut i = 0usize;
        while data.len() < len {
            data.extend_from_slice(&unit[i % 700..]);
            data.extend_from_slice(format!("<{i}>").as_bytes());
            i += 1;
        }
        data.truncate(len);
        data
    }

    #[test]
    fn jumping_over_long_matches_round_trips_and_costs_little() {
        let data = [long_repeats(300_000), sample(300_000)].concat();
        let compress = |effort| {
            let mut out = Vec::new();
            Compressor::new(effort).unwrap().compress_chunk(&data, true, &mut out).unwrap();
            out
        };
        let every_position = compress(Effort::level(2));
        for max_insert_length in [0, 1, 8, 40] {
            let out = compress(Effort { level: 2, max_insert_length: Some(max_insert_length) });
            let (back, status) = inflate(&out, data.len());
            assert_eq!(status, Status::StreamEnd, "cut-off {max_insert_length}");
            assert!(back == data, "cut-off {max_insert_length}: content differs");
            assert!(
                out.len() < every_position.len() * 11 / 10,
                "cut-off {max_insert_length}: {} against {}",
                out.len(),
                every_position.len()
            );
        }
        assert!(compress(Effort { level: 2, max_insert_length: Some(8) }) != every_position, "no match was jumped over");
        // 258 (the longest match) and over: every position, as upstream.
        assert!(compress(Effort { level: 2, max_insert_length: Some(258) }) == every_position);
        assert!(compress(Effort { level: 2, max_insert_length: Some(u32::MAX) }) == every_position);
        // Only the greedy levels use it.
        let lazy = |max_insert_length| {
            let mut out = Vec::new();
            Compressor::new(Effort { level: 7, max_insert_length }).unwrap().compress_chunk(&data, true, &mut out).unwrap();
            out
        };
        assert!(lazy(Some(1)) == lazy(None));
    }

    #[test]
    fn levels_over_twelve_are_refused() {
        assert_eq!(Compressor::new(Effort::level(13)).err().map(|e| e.kind()), Some(io::ErrorKind::InvalidInput));
    }
}
