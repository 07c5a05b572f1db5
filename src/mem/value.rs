//! Values held by registers, record slots, list elements and dict values.

/// A reference to a heap object: its slot in the object table and its id
/// (allocation number). The heap checks the id against the slot's before
/// every use, so a reference to a freed object is detected without
/// touching freed memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Handle {
    pub(crate) slot: u32,
    pub(crate) id: u32,
}

impl Handle {
    /// The object's id: its allocation number (1, 2, 3, …).
    pub fn id(self) -> u32 {
        self.id
    }
}

/// One value: `nil`, an `int`, or a reference to an object.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Value {
    #[default]
    Nil,
    Int(i64),
    Ref(Handle),
}

impl Value {
    /// `nil` and `0` are false; everything else is true.
    #[inline(always)]
    pub fn is_falsy(self) -> bool {
        matches!(self, Value::Nil | Value::Int(0))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn value_is_sixteen_bytes() {
        assert_eq!(std::mem::size_of::<super::Value>(), 16);
    }

    /// `Objects::new_record` fills a record's slots with zero bytes: they
    /// must read as `nil` (Miri checks the value is valid).
    #[test]
    fn zero_bytes_are_nil() {
        // SAFETY: the assertion is what this checks; under Miri an invalid
        // value is reported as undefined behaviour.
        let v: super::Value = unsafe { std::mem::zeroed() };
        assert_eq!(v, super::Value::Nil);
    }
}
