//! [`Value`]: any `'static` value moved between greenlets.
//!
//! Small values (at most two machine words, aligned no more than `u64`) are stored
//! inline, so switching with `()`, integers, pointers, `Rc`s and the like costs
//! no heap allocation (SPEC S12). Larger values are boxed once.

use std::any::{Any, TypeId};
use std::fmt;
use std::marker::PhantomData;
use std::mem::{self, ManuallyDrop, MaybeUninit};
use std::ptr;

use crate::arch::{self, Transfer};

/// Two machine words, 8-aligned on every CPU so that `u64`, `i64` and `f64`
/// (two words on 32-bit CPUs, and 8-aligned on some, such as armv7) are
/// stored inline there too, as S12 wants. Pointer-typed, so that a stored
/// pointer keeps its provenance; always initialised (see [`Value::new`]),
/// so that a switch can carry them in registers.
#[repr(C, align(8))]
#[derive(Clone, Copy)]
struct Words([*const (); 2]);

/// The same two words while a value is being written into them: its
/// padding, if it has any, is not initialised yet.
#[repr(C, align(8))]
struct RawWords([MaybeUninit<*const ()>; 2]);

/// Per-type operations; one `'static` instance per stored type.
struct VTable {
    type_id: fn() -> TypeId,
    type_name: fn() -> &'static str,
    /// Drops the stored value in place (inline) or frees its box (boxed);
    /// `None` for inline types with no destructor (`()`, integers, `&T`...),
    /// so that dropping such a `Value` costs a branch, not an indirect call.
    drop: Option<unsafe fn(&mut Words)>,
}

struct Ops<T>(T);

impl<T: 'static> Ops<T> {
    const INLINE: bool = mem::size_of::<T>() <= mem::size_of::<Words>()
        && mem::align_of::<T>() <= mem::align_of::<Words>();

    const VTABLE: VTable = VTable {
        type_id: TypeId::of::<T>,
        type_name: std::any::type_name::<T>,
        drop: if Self::INLINE && !mem::needs_drop::<T>() {
            None
        } else {
            Some(Self::drop_stored)
        },
    };

    /// # Safety
    /// `slot` must hold a live `T` stored by [`Value::new`] for this `T`.
    unsafe fn drop_stored(slot: &mut Words) {
        if Self::INLINE {
            // SAFETY: for inline types the slot holds the T itself, initialised
            // and suitably aligned (checked by INLINE).
            unsafe { slot.0.as_mut_ptr().cast::<T>().drop_in_place() }
        } else {
            // SAFETY: for boxed types the first word is the pointer returned by
            // Box::into_raw for this T, not yet freed.
            drop(unsafe { Box::from_raw(boxed_ptr::<T>(slot)) })
        }
    }
}

/// Is `T` one of the common types known to have no padding, whose bytes
/// are therefore all initialised once written? Those skip the freeze in
/// [`Value::new`], so that an integer sent by a switch goes straight into
/// its register. Decided at compile time: the type ids are constants.
#[inline(always)]
fn without_padding<T: 'static>() -> bool {
    let id = TypeId::of::<T>();
    [
        TypeId::of::<u8>(),
        TypeId::of::<u16>(),
        TypeId::of::<u32>(),
        TypeId::of::<u64>(),
        TypeId::of::<usize>(),
        TypeId::of::<i8>(),
        TypeId::of::<i16>(),
        TypeId::of::<i32>(),
        TypeId::of::<i64>(),
        TypeId::of::<isize>(),
        TypeId::of::<f32>(),
        TypeId::of::<f64>(),
        TypeId::of::<bool>(),
        TypeId::of::<char>(),
        TypeId::of::<&'static str>(),
    ]
    .contains(&id)
}

/// The box pointer that [`Value::new`] stored in the first word of a slot.
fn boxed_ptr<T>(slot: &Words) -> *mut T {
    slot.0[0].cast_mut().cast::<T>()
}

/// Any `'static` value passed by [`switch`](crate::Greenlet::switch), returned by
/// `run`, or received from a switch.
///
/// ```
/// use greenlet::Value;
/// let v = Value::new(42u32);
/// assert!(v.is::<u32>());
/// assert_eq!(v.downcast_ref::<u32>(), Some(&42));
/// assert_eq!(v.downcast::<u32>().unwrap(), 42);
/// ```
///
/// `Value::new` of a `Value` gives that same value back rather than nesting it,
/// so a value received from one switch can be passed on to the next unchanged:
///
/// ```
/// use greenlet::Value;
/// let v = Value::new(Value::new("hi"));
/// assert_eq!(v.downcast::<&str>().unwrap(), "hi");
/// ```
// The payload first and the type descriptor last, in this order (repr(C)):
// where a Value does go through memory (a received one that is kept, a
// record of the slow path), its two words are read with one 16-byte load
// and the descriptor with one 8-byte load, each matching the store that
// wrote it, which the store buffer can forward. With the descriptor first,
// the 16-byte load spanned two stores and waited for both to reach the
// cache: a u64 round trip took 10.9 ns against 6.8 ns for a unit one (Xeon
// VM, criterion, docs/benchmarks.md).
#[repr(C)]
pub struct Value {
    slot: Words,
    vtable: &'static VTable,
    /// A `Value` may hold an `Rc` or a `Greenlet`: it must not cross threads.
    _not_send: PhantomData<*const ()>,
}

impl Value {
    /// Wraps `v`; a `Value` is returned unchanged.
    ///
    /// ```
    /// use greenlet::Value;
    /// let small = Value::new(7u8); // up to two words: stored inline, no allocation
    /// let big = Value::new([1u64; 8]); // larger: boxed once
    /// assert_eq!(big.downcast_ref::<[u64; 8]>().map(|a| a.iter().sum()), Some(8u64));
    /// let same = Value::new(small); // not nested: still a u8 inside
    /// assert_eq!(same.downcast::<u8>().unwrap(), 7);
    /// ```
    #[inline]
    pub fn new<T: 'static>(v: T) -> Value {
        let mut v = ManuallyDrop::new(v);
        if let Some(value) = (&mut *v as &mut dyn Any).downcast_mut::<Value>() {
            // SAFETY: `v` is wrapped in ManuallyDrop and never touched again, so
            // reading the Value out of it moves it without a double drop.
            return unsafe { std::ptr::read(value) };
        }
        let slot = if !Ops::<T>::INLINE {
            // SAFETY: ownership moves out of the ManuallyDrop into the box.
            let boxed = Box::new(unsafe { ManuallyDrop::take(&mut v) });
            // Stored as a pointer, not as an integer, so that it keeps its
            // provenance (Miri checks this with -Zmiri-strict-provenance).
            Words([Box::into_raw(boxed).cast_const().cast(), ptr::null()])
        } else if mem::size_of::<T>() == 0 {
            // Nothing to store; the words are null, which is initialised.
            Words([ptr::null(); 2])
        } else {
            // Zeroed first, so that the bytes outside the value are
            // initialised.
            let mut raw = RawWords([MaybeUninit::new(ptr::null()); 2]);
            // SAFETY: INLINE guarantees the slot is large and aligned enough
            // for T; ownership moves from the ManuallyDrop into the slot.
            unsafe {
                raw.0
                    .as_mut_ptr()
                    .cast::<T>()
                    .write(ManuallyDrop::take(&mut v))
            };
            if without_padding::<T>() {
                // SAFETY: T has no padding, so every byte of the words is
                // initialised now, and they may be read as words (an
                // integer's bytes read as a pointer make a pointer without
                // provenance, never dereferenced: it goes back as the same
                // integer).
                Words(unsafe { raw.0.as_ptr().cast::<[*const (); 2]>().read() })
            } else {
                // The value's padding may be uninitialised: the words are
                // read back through the assembly, the one way to turn such
                // bytes into words that a register may carry.
                Words(arch::freeze_pair(&raw.0))
            }
        };
        Value {
            vtable: &Ops::<T>::VTABLE,
            slot,
            _not_send: PhantomData,
        }
    }

    /// Is the stored value a `T`?
    ///
    /// ```
    /// let v = greenlet::Value::new(String::from("x"));
    /// assert!(v.is::<String>() && !v.is::<&str>());
    /// ```
    #[inline]
    pub fn is<T: 'static>(&self) -> bool {
        // The vtable's address is usually the same for the same type, which
        // makes the common check one comparison; it is not guaranteed (one
        // copy per codegen unit may exist), so the type id decides otherwise.
        std::ptr::eq(self.vtable, &Ops::<T>::VTABLE) || (self.vtable.type_id)() == TypeId::of::<T>()
    }

    /// Takes the stored value out if it is a `T`; otherwise gives `self` back.
    ///
    /// ```
    /// let v = greenlet::Value::new(7i64);
    /// let v = v.downcast::<u8>().unwrap_err();
    /// assert_eq!(v.downcast::<i64>().unwrap(), 7);
    /// ```
    #[inline]
    pub fn downcast<T: 'static>(self) -> Result<T, Value> {
        if !self.is::<T>() {
            return Err(self);
        }
        let this = ManuallyDrop::new(self);
        if Ops::<T>::INLINE {
            // SAFETY: the type check passed, so the slot holds an inline T; the
            // Value is never dropped (ManuallyDrop), so the T moves out exactly once.
            Ok(unsafe { this.slot.0.as_ptr().cast::<T>().read() })
        } else {
            // SAFETY: the type check passed, so the first word is Box<T>::into_raw;
            // the Value is never dropped, so the box is reclaimed exactly once.
            Ok(*unsafe { Box::from_raw(boxed_ptr::<T>(&this.slot)) })
        }
    }

    /// Borrows the stored value if it is a `T`.
    ///
    /// ```
    /// let v = greenlet::Value::new(vec![1, 2, 3]);
    /// assert_eq!(v.downcast_ref::<Vec<i32>>().map(Vec::len), Some(3));
    /// ```
    #[inline]
    pub fn downcast_ref<T: 'static>(&self) -> Option<&T> {
        if !self.is::<T>() {
            return None;
        }
        if Ops::<T>::INLINE {
            // SAFETY: the type check passed, so the slot holds a live inline T that
            // lives as long as &self.
            Some(unsafe { &*self.slot.0.as_ptr().cast::<T>() })
        } else {
            // SAFETY: the type check passed, so the first word points at a live
            // boxed T owned by self.
            Some(unsafe { &*boxed_ptr::<T>(&self.slot) })
        }
    }

    /// The name of the stored type, as `std::any::type_name` spells it.
    ///
    /// Handy in messages when a value is not of the type expected:
    ///
    /// ```
    /// let v = greenlet::Value::new(2.5f64);
    /// let err = v.downcast::<i32>().unwrap_err();
    /// assert_eq!(format!("expected i32, got {}", err.type_name()), "expected i32, got f64");
    /// ```
    pub fn type_name(&self) -> &'static str {
        (self.vtable.type_name)()
    }
}

impl Value {
    /// The value as a switch's three words: the slot's two words, then the
    /// type descriptor's address, which is at least 4-aligned, so its two low
    /// bits are free for the switch's tags (always zero here). Ownership goes
    /// with the words: exactly one [`Value::from_transfer`] must take it back.
    /// The words are exposed as addresses (`as usize`) and taken back from
    /// them, so that a pointer inside a value keeps its provenance across
    /// the switch.
    #[inline(always)]
    pub(crate) fn into_transfer(self) -> Transfer {
        let this = ManuallyDrop::new(self);
        const _: () = assert!(mem::align_of::<VTable>() >= 4);
        Transfer::new(
            this.slot.0[0] as usize,
            this.slot.0[1] as usize,
            this.vtable as *const VTable as usize,
        )
    }

    /// Takes back a value that [`Value::into_transfer`] made into words.
    ///
    /// # Safety
    /// `t` must be the words of one `into_transfer` (as the switch handed them
    /// over), not taken back before.
    #[inline(always)]
    pub(crate) unsafe fn from_transfer(t: Transfer) -> Value {
        let [a, b, c] = t.words;
        // SAFETY: per the contract the third word is the address of a
        // 'static VTable (exposed by into_transfer).
        let vtable = unsafe { &*(c as *const VTable) };
        Value {
            slot: Words([a as *const (), b as *const ()]),
            vtable,
            _not_send: PhantomData,
        }
    }
}

impl Drop for Value {
    #[inline]
    fn drop(&mut self) {
        if let Some(drop_stored) = self.vtable.drop {
            // SAFETY: the slot holds the value stored by Value::new with this
            // vtable, not yet moved out (every move-out path forgets the Value).
            unsafe { drop_stored(&mut self.slot) }
        }
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Value({})", self.type_name())
    }
}

impl Default for Value {
    /// The unit value, `Value::new(())`.
    fn default() -> Value {
        Value::new(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

    #[test]
    fn inline_and_boxed_round_trip() {
        const _: () =
            assert!(Ops::<()>::INLINE && Ops::<u64>::INLINE && Ops::<(usize, usize)>::INLINE);
        const _: () = assert!(!Ops::<[u64; 3]>::INLINE && !Ops::<String>::INLINE);
        assert_eq!(
            Value::new([1u64, 2, 3]).downcast::<[u64; 3]>().unwrap(),
            [1, 2, 3]
        );
        assert_eq!(
            Value::new(String::from("s")).downcast::<String>().unwrap(),
            "s"
        );
        assert_eq!(Value::new(5u128).downcast::<u128>().unwrap(), 5);
    }

    /// References and small pointers stored inline come out intact, with
    /// their provenance (Miri checks it with strict provenance).
    #[test]
    fn references_and_pointers_survive_the_words() {
        let text: &'static str = "borrowed";
        let back = Value::new(text).downcast::<&str>().unwrap();
        assert!(std::ptr::eq(back, text));
        let rc = Rc::new(11);
        let back = Value::new(rc.clone()).downcast::<Rc<i32>>().unwrap();
        assert!(Rc::ptr_eq(&back, &rc) && *back == 11);
    }

    /// Values with padding (a tuple's, an `Option`'s unused payload) are
    /// frozen into words by the assembly and come out as they went in.
    #[test]
    fn padded_values_survive_the_freeze() {
        if cfg!(miri) {
            eprintln!(
                "!!! NOT RUN UNDER MIRI: padded values are frozen into words by inline \
                 assembly, which Miri cannot run (its stand-in is a plain read, which \
                 Miri rightly rejects for padding); the native and qemu runs check it"
            );
            return;
        }
        assert_eq!(
            Value::new((7u8, 9u32)).downcast::<(u8, u32)>().unwrap(),
            (7, 9)
        );
        assert_eq!(
            Value::new((1u8, 2u64)).downcast::<(u8, u64)>().unwrap(),
            (1, 2)
        );
        assert_eq!(
            Value::new(None::<u32>).downcast::<Option<u32>>().unwrap(),
            None
        );
        assert_eq!(
            Value::new(Some(5u16)).downcast::<Option<u16>>().unwrap(),
            Some(5)
        );
    }

    #[test]
    fn drops_exactly_once() {
        let rc = Rc::new(());
        let v = Value::new(rc.clone());
        assert_eq!(Rc::strong_count(&rc), 2);
        drop(v);
        assert_eq!(Rc::strong_count(&rc), 1);
        let big = Value::new((rc.clone(), [0u64; 4]));
        let (back, _) = big.downcast::<(Rc<()>, [u64; 4])>().unwrap();
        assert_eq!(Rc::strong_count(&rc), 2);
        drop(back);
        let wrong = Value::new(rc.clone()).downcast::<u8>().unwrap_err();
        assert_eq!(Rc::strong_count(&rc), 2);
        drop(wrong);
        assert_eq!(Rc::strong_count(&rc), 1);
    }

    #[test]
    fn values_nest_flat_and_boxed_values_borrow_and_refuse_cleanly() {
        let rc = Rc::new(());
        // A Value of a Value is that same Value, not a box around it.
        let v = Value::new(Value::new((rc.clone(), [9u64; 3])));
        assert!(v.is::<(Rc<()>, [u64; 3])>() && !v.is::<Value>());
        assert_eq!(v.downcast_ref::<(Rc<()>, [u64; 3])>().unwrap().1, [9; 3]);
        assert_eq!(Rc::strong_count(&rc), 2);
        // A wrong downcast of a boxed value hands the same box back intact.
        let v = v.downcast::<String>().unwrap_err();
        let (back, arr) = v.downcast::<(Rc<()>, [u64; 3])>().unwrap();
        assert_eq!(arr, [9; 3]);
        drop(back);
        assert_eq!(Rc::strong_count(&rc), 1);
        // Zero-sized values take no room and still round-trip.
        assert!(Value::new(()).downcast::<()>().is_ok());
        assert_eq!(format!("{:?}", Value::default()), "Value(())");
    }

    #[test]
    fn debug_names_the_type() {
        assert_eq!(format!("{:?}", Value::new(1u8)), "Value(u8)");
    }
}
