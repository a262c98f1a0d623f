use greenlet::{Greenlet, Value};
#[inline(never)]
#[no_mangle]
pub fn probe_create(v: u64) -> Value {
    Greenlet::new(|v: Value| v).switch(v)
}
fn main() {
    Greenlet::new(|_| ()).switch(());
    for i in 0..1000 {
        drop(probe_create(i));
    }
}
