//! A zeroed `f32` buffer whose data start on a 64-byte cache line, for weights a kernel
//! reads row by row: the allocator's 16-byte alignment made every AVX-512 load of a
//! 16-float row span two lines.

/// Floats per 64-byte cache line.
pub(crate) const LINE: usize = 16;

/// `len` floats, zeroed, starting on a cache line.
#[derive(Debug, Default)]
pub(crate) struct LineAligned {
    buf: Vec<f32>,
    /// The data's start in `buf`.
    off: usize,
    len: usize,
}

impl LineAligned {
    /// `len` zeros, aligned.
    pub(crate) fn zeroed(len: usize) -> LineAligned {
        let buf = vec![0.0f32; len + LINE - 1];
        // At most LINE - 1 floats for a 4-byte-aligned pointer; `min` keeps the data
        // inside `buf` should the offset be unknowable (then it stays unaligned).
        let off = buf.as_ptr().align_offset(LINE * 4).min(LINE - 1);
        LineAligned { buf, off, len }
    }

    /// The data. Inlined: a per-sample step asks for its weights' start every call, and
    /// as a call it made the step spill and reload its registers around it.
    #[inline]
    pub(crate) fn as_slice(&self) -> &[f32] {
        &self.buf[self.off..self.off + self.len]
    }

    /// The data, writable.
    #[inline]
    pub(crate) fn as_mut_slice(&mut self) -> &mut [f32] {
        &mut self.buf[self.off..self.off + self.len]
    }
}

impl Clone for LineAligned {
    fn clone(&self) -> LineAligned {
        // A copied Vec lands wherever the allocator puts it: align again.
        let mut out = LineAligned::zeroed(self.len);
        out.as_mut_slice().copy_from_slice(self.as_slice());
        out
    }
}

impl PartialEq for LineAligned {
    fn eq(&self, other: &LineAligned) -> bool {
        self.as_slice() == other.as_slice()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_start_on_a_line_and_clones_realign() {
        for len in [0, 1, 17, 1000] {
            let mut a = LineAligned::zeroed(len);
            assert_eq!(a.as_slice().len(), len);
            assert!(a.as_slice().iter().all(|&v| v == 0.0));
            a.as_mut_slice()
                .iter_mut()
                .enumerate()
                .for_each(|(i, v)| *v = i as f32);
            let b = a.clone();
            assert_eq!(a, b);
            for x in [&a, &b] {
                assert_eq!(x.as_slice().as_ptr() as usize % (LINE * 4), 0, "len {len}");
            }
        }
    }
}
