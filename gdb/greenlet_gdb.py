# gdb support for the `greenlet` crate (SPEC section 10; docs/backtraces.md).
#
# Embedded in every binary built with debug info by
# `#![debugger_visualizer(gdb_script_file = ...)]` in src/lib.rs; gdb runs it
# once the binary is in its auto-load safe path. It can also be `source`d.
#
#   info greenlets            the live greenlets of the selected thread: id,
#                             state, parent, stack range, the function each is
#                             suspended in; `*` marks the running one
#   greenlet ID CMD           runs the gdb command CMD (bt, frame N, info
#                             locals, ...) in the context of suspended
#                             greenlet ID; its frames are numbered from 1
#   greenlet apply all CMD    the same in each suspended greenlet
#   print g                   a Greenlet or WeakGreenlet shows its id and state
#
# Everything comes from the exported table `greenlet_<version>_debug`
# (src/greenlet/registry.rs), read as raw memory at the offsets it gives, so
# the script works the same on a live process and on a core dump, in any
# source language, in either byte order, with or without the crate's own
# debug info. Without that
# symbol the script does nothing (its commands say so).
#
# A suspended greenlet's registers come from its saved frame through an
# unwinder: while a `greenlet ID ...` command runs, the thread's innermost
# real frame is given, as its caller, the greenlet's innermost frame (resume
# address, stack pointer and the registers the switch saved), and that frame
# (with any inlined into it) is hidden from backtraces. Nothing is written to
# the inferior.

import re
import struct

import gdb

try:
    from gdb.unwinder import Unwinder as _Unwinder, register_unwinder as _register_unwinder
except ImportError:  # gdb without the unwinder API (before 7.10)
    _Unwinder = object
    _register_unwinder = None

# The crate version is part of the symbol's name (a unit test keeps this in
# step with Cargo.toml): two versions of the crate in one program each have
# their own table, and each embeds its own copy of this script.
_SYMBOL = "greenlet_0_1_0_debug"
_MAGIC = b"GREENLET"
_STATE_NAMES = ("unstarted", "suspended", "running", "dead")

# DWARF register numbers -> gdb's register names, per CPU (gdb's
# `show architecture` name). The table in the binary says which registers a
# saved frame holds and where; this only names them. A port of the switch to
# another CPU adds its line here and its frame to src/arch/debug_frame.rs.
_DWARF_NAMES = {
    "i386:x86-64": {3: "rbx", 6: "rbp", 7: "rsp", 16: "rip"},
    # "aarch64": {19..28: "x19".., 29: "x29", 30: "x30", 31: "sp", 32: "pc"},
}

# Frames of the crate itself, skipped when naming the function a greenlet is
# suspended in.
_OWN_FRAME = re.compile(r"^(greenlet::|<greenlet::|core::|std::|greenlet_\d+_\d+_\d+_)")


class _Table(object):
    """The exported debug table of one copy of the crate."""

    def __init__(self, address):
        self.address = address
        head = _read(address, 24)
        if head[:8] != _MAGIC:
            raise ValueError("not a greenlet debug table")
        # The layout version is 1 in the program's byte order.
        e = "<" if struct.unpack_from("<I", head, 8)[0] < 0x10000 else ">"
        global _ENDIAN
        _ENDIAN = e
        self.version, self.size, self.pointer_size, threads_offset = struct.unpack_from(e + "IIII", head, 8)
        raw = _read(address, self.size)
        (
            self.thread_next,
            self.thread_tid,
            self.thread_slots,
            self.slot_next,
            self.slot_id,
            self.slot_inner,
            self.inner_sp,
            self.inner_state,
            self.inner_parent,
            self.inner_stack_bottom,
            self.inner_stack_meta,
        ) = struct.unpack_from(e + "11I", raw, 24)
        self.state_values = struct.unpack_from(e + "4B", raw, 68)
        (self.stack_size_mask,) = struct.unpack_from(e + "Q", raw, 72)
        self.frame_known, self.frame_saved_count = struct.unpack_from(e + "BB", raw, 80)
        (
            self.sp_dwarf,
            self.pc_dwarf,
            self.pc_offset,
            self.frame_bytes,
            self.init_entry,
        ) = struct.unpack_from(e + "5H", raw, 82)
        saved = struct.unpack_from(e + "8H", raw, 92)
        self.saved = [(saved[2 * i], saved[2 * i + 1]) for i in range(self.frame_saved_count)]
        self.arch = raw[108:128].split(b"\0", 1)[0].decode("ascii", "replace")
        self.threads_head = _pointer(address + threads_offset, self.pointer_size)

    def thread_record(self, tid):
        record = self.threads_head
        seen = 0
        while record and seen < 100000:
            if _u64(record + self.thread_tid) == tid:
                return record
            record = _pointer(record + self.thread_next, self.pointer_size)
            seen += 1
        return None

    def greenlets(self, record):
        """Every registered greenlet of a thread record, dead ones included."""
        out = []
        slot = _pointer(record + self.thread_slots, self.pointer_size)
        seen = 0
        while slot and seen < 10000000:
            ident = _u64(slot + self.slot_id)
            if ident:
                out.append(Greenlet(self, slot, ident))
            slot = _pointer(slot + self.slot_next, self.pointer_size)
            seen += 1
        out.sort(key=lambda g: g.id)
        return out

    def id_of_object(self, inner):
        if not inner:
            return None
        return _u64(inner - self.slot_inner + self.slot_id)


class Greenlet(object):
    """One greenlet as the table describes it."""

    def __init__(self, table, slot, ident):
        self.table = table
        self.id = ident
        t = table
        self.inner = slot + t.slot_inner
        state = _read(self.inner + t.inner_state, 1)[0]
        self.state = _STATE_NAMES[t.state_values.index(state)] if state in t.state_values else "?%d" % state
        self.sp = _pointer(self.inner + t.inner_sp, t.pointer_size)
        parent = _pointer(self.inner + t.inner_parent, t.pointer_size)
        self.parent = t.id_of_object(parent) if parent else None
        bottom = _pointer(self.inner + t.inner_stack_bottom, t.pointer_size)
        if bottom:
            size = _pointer(self.inner + t.inner_stack_meta, t.pointer_size) & t.stack_size_mask
            self.stack = (bottom, bottom + size)
        else:
            self.stack = None

    def is_main(self):
        return self.parent is None and self.state != "dead"

    def saved_registers(self):
        """(gdb register name, value) of the innermost frame of a suspended
        greenlet, from its saved frame; None if the CPU's frame is unknown."""
        t = self.table
        names = _DWARF_NAMES.get(t.arch)
        if not t.frame_known or names is None:
            return None
        regs = [
            (names[t.pc_dwarf], _pointer(self.sp + t.pc_offset, t.pointer_size)),
            (names[t.sp_dwarf], self.sp + t.frame_bytes),
        ]
        for dwarf, offset in t.saved:
            regs.append((names[dwarf], _pointer(self.sp + offset, t.pointer_size)))
        return regs

    def entry_function(self):
        """For an unstarted greenlet: the entry function its frame will call."""
        t = self.table
        if not t.frame_known:
            return None
        return _function_at(_pointer(self.sp + t.init_entry, t.pointer_size), caller=False)


def _inferior():
    return gdb.selected_inferior()


def _read(address, length):
    return bytes(_inferior().read_memory(address, length))


_ENDIAN = "<"  # the program's byte order, learnt from its table


def _u64(address):
    return struct.unpack(_ENDIAN + "Q", _read(address, 8))[0]


def _pointer(address, size):
    return struct.unpack(_ENDIAN + ("Q" if size == 8 else "I"), _read(address, size))[0]


def _function_at(pc, caller=True):
    """The name of the function holding pc (pc - 1 for a return address)."""
    try:
        block = gdb.block_for_pc(pc - 1 if caller else pc)
        while block is not None and block.function is None:
            block = block.superblock
        if block is not None and block.function is not None:
            return block.function.print_name
    except RuntimeError:
        pass
    try:
        text = gdb.execute("info symbol 0x%x" % (pc - 1 if caller else pc), to_string=True)
        return text.split(" in section")[0].split(" + ")[0].strip()
    except gdb.error:
        return None


def _tables():
    """The debug tables of the program (normally one)."""
    try:
        text = gdb.execute("info address " + _SYMBOL, to_string=True)
    except gdb.error:
        return []
    m = re.search(r"(?:at|address) (0x[0-9a-fA-F]+)", text)
    if not m:
        return []
    try:
        return [_Table(int(m.group(1), 16))]
    except (gdb.MemoryError, ValueError):
        return []


def _thread_greenlets():
    """(table, greenlets) of the selected thread, or raises gdb.GdbError."""
    tables = _tables()
    if not tables:
        raise gdb.GdbError("greenlet: this program has no %s symbol: no greenlets to show" % _SYMBOL)
    thread = gdb.selected_thread()
    if thread is None:
        raise gdb.GdbError("greenlet: no thread selected (is the program running, or a core loaded?)")
    tid = thread.ptid[1] or thread.ptid[0]
    for table in tables:
        record = table.thread_record(tid)
        if record is not None:
            return table, table.greenlets(record)
    return tables[0], []


def _find(ident):
    table, greenlets = _thread_greenlets()
    for g in greenlets:
        if g.id == ident:
            return g
    raise gdb.GdbError("greenlet: no greenlet %d on this thread (see `info greenlets`)" % ident)


# -- the unwinder and the frame filter that show a suspended greenlet --------

_active = None  # the Greenlet whose frames are being shown, or None
# The level of the thread's innermost real (not inlined) frame, the one the
# unwinder gives the greenlet's frames as callers; it and the inlined frames
# inside it are hidden while a greenlet is shown.
_active_level = 0


class _GreenletUnwinder(_Unwinder):
    """Gives the thread's innermost frame, while a `greenlet ID ...` command
    runs, the suspended greenlet's innermost frame as its caller."""

    def __init__(self):
        super(_GreenletUnwinder, self).__init__("greenlet")

    def __call__(self, pending_frame):
        g = _active
        if g is None:
            return None
        if hasattr(pending_frame, "level") and pending_frame.level() != _active_level:
            return None
        regs = g.saved_registers()
        if regs is None:
            return None
        pc_name, pc = regs[0]
        sp_name = regs[1][0]
        pc_type = pending_frame.read_register(pc_name).type
        sp_type = pending_frame.read_register(sp_name).type
        # The hidden frame's identity: the greenlet's saved stack pointer,
        # below every frame of the greenlet, so frame addresses rise.
        frame_id = _FrameId(gdb.Value(g.sp).cast(sp_type), pending_frame.read_register(pc_name))
        info = pending_frame.create_unwind_info(frame_id)
        for name, value in regs:
            ty = pc_type if name == pc_name else sp_type
            info.add_saved_register(name, gdb.Value(value).cast(ty))
        return info


class _FrameId(object):
    def __init__(self, sp, pc):
        self.sp = sp
        self.pc = pc


class _HideFirstFrame(object):
    """Hides the thread's own innermost frame while a greenlet is shown."""

    def __init__(self):
        self.name = "greenlet"
        self.priority = 100
        self.enabled = True

    def filter(self, frames):
        if _active is None:
            return frames
        return _skip_thread_frames(frames)


def _skip_thread_frames(frames):
    for f in frames:
        if f.inferior_frame().level() <= _active_level:
            continue
        yield f


def _first_real_level():
    """The level of the innermost frame that is not an inlined one."""
    frame, level = gdb.newest_frame(), 0
    while frame is not None and frame.type() == gdb.INLINE_FRAME:
        frame, level = frame.older(), level + 1
    return level


def _first_greenlet_frame():
    frame = gdb.newest_frame()
    for _ in range(_active_level + 1):
        frame = frame.older()
    return frame


class _Showing(object):
    """Context manager: gdb's frames are the greenlet's while inside."""

    def __init__(self, g):
        self.g = g

    def __enter__(self):
        global _active, _active_level
        if self.g.saved_registers() is None:
            raise gdb.GdbError("greenlet: no saved-frame description for this CPU in the debug table")
        try:
            self.selected = gdb.selected_frame()
        except gdb.error:
            self.selected = None
        _active, _active_level = None, 0
        gdb.invalidate_cached_frames()
        level = _first_real_level()
        _active, _active_level = self.g, level
        gdb.invalidate_cached_frames()
        first = _first_greenlet_frame()
        # Select the frame the greenlet is suspended in: the first one
        # outside the crate and std (else its innermost).
        frame, depth = first, 0
        while frame is not None and depth < 64:
            name = frame.name()
            if name and not _OWN_FRAME.match(name):
                break
            frame, depth = frame.older(), depth + 1
        (frame or first).select()
        return self

    def __exit__(self, *exc):
        global _active, _active_level
        _active, _active_level = None, 0
        gdb.invalidate_cached_frames()
        try:
            gdb.newest_frame().select()
        except gdb.error:
            pass
        return False


def _suspended_in(g):
    """The first frame of a suspended greenlet outside the crate and std."""
    try:
        with _Showing(g):
            frame = _first_greenlet_frame()
            first = None
            depth = 0
            while frame is not None and depth < 64:
                name = frame.name() or _function_at(frame.pc())
                if name and first is None:
                    first = name
                if name and not _OWN_FRAME.match(name):
                    return name
                frame = frame.older()
                depth += 1
            return first
    except (gdb.error, gdb.MemoryError, gdb.GdbError):
        return None


def _running_in():
    try:
        frame = gdb.newest_frame()
        depth = 0
        while frame is not None and depth < 64:
            name = frame.name()
            if name and not _OWN_FRAME.match(name):
                return name
            frame = frame.older()
            depth += 1
    except gdb.error:
        pass
    return None


_HASH = re.compile(r"::h[0-9a-f]{16}$")


def _function_of(g):
    # Names from the symbol table alone (no debug info) end in a hash.
    if g.state == "suspended":
        return _HASH.sub("", _suspended_in(g) or "?")
    if g.state == "running":
        return _HASH.sub("", _running_in() or "?")
    if g.state == "unstarted":
        entry = _HASH.sub("", g.entry_function() or "")
        return "(not started%s)" % (": " + entry if entry else "")
    return ""


# -- commands ----------------------------------------------------------------


class _InfoGreenlets(gdb.Command):
    """List the live greenlets of the selected thread.
Usage: info greenlets [all]
Columns: id, state, parent id, stack range (main greenlets run on the
thread's stack), the function each is suspended in; `*` marks the running
greenlet. With `all`, dead greenlets that still have handles are listed too."""

    def __init__(self):
        super(_InfoGreenlets, self).__init__("info greenlets", gdb.COMMAND_STACK)

    def invoke(self, arg, from_tty):
        show_dead = arg.strip() == "all"
        _, greenlets = _thread_greenlets()
        print("  %-4s %-10s %-6s %-33s %s" % ("Id", "State", "Parent", "Stack", "Function"))
        for g in greenlets:
            if g.state == "dead" and not show_dead:
                continue
            mark = "*" if g.state == "running" else " "
            parent = "-" if g.parent is None else str(g.parent)
            if g.stack:
                stack = "0x%x-0x%x" % g.stack
            elif g.is_main():
                stack = "(thread stack)"
            else:
                stack = "-"
            print("%s %-4d %-10s %-6s %-33s %s" % (mark, g.id, g.state, parent, stack, _function_of(g)))


class _GreenletCommand(gdb.Command):
    """Run a gdb command in the context of a suspended greenlet.
Usage: greenlet ID COMMAND        e.g. greenlet 3 bt, greenlet 3 frame 2,
                                  greenlet 3 info locals
       greenlet apply all COMMAND in every suspended greenlet of the thread
The greenlet's frames are numbered from 1 (one more for each inlined
frame the thread stopped in): frame 1 is the innermost one, where it
switched away; `frame N` picks its frame N. Other frame commands
(`info locals`, `print`) act on the frame it is suspended in: the first
one outside the crate and std (the function `info greenlets` names)."""

    def __init__(self):
        super(_GreenletCommand, self).__init__("greenlet", gdb.COMMAND_STACK)

    def invoke(self, arg, from_tty):
        words = arg.split(None, 2)
        if len(words) >= 3 and words[0] == "apply" and words[1] == "all":
            _, greenlets = _thread_greenlets()
            for g in greenlets:
                if g.state != "suspended":
                    continue
                print("\nGreenlet %d (%s):" % (g.id, g.state))
                self.run_in(g, words[2], from_tty)
            return
        words = arg.split(None, 1)
        if len(words) < 2:
            raise gdb.GdbError("usage: greenlet ID COMMAND | greenlet apply all COMMAND")
        try:
            ident = int(words[0])
        except ValueError:
            raise gdb.GdbError("greenlet: `%s` is not a greenlet id (see `info greenlets`)" % words[0])
        g = _find(ident)
        if g.state != "suspended":
            raise gdb.GdbError(
                "greenlet: greenlet %d is %s; only a suspended greenlet has saved frames%s"
                % (g.id, g.state, " (the running one is the thread's own: use the command directly)" if g.state == "running" else "")
            )
        self.run_in(g, words[1], from_tty)

    @staticmethod
    def run_in(g, command, from_tty):
        with _Showing(g):
            gdb.execute(command, from_tty)


class _GreenletPrinter(object):
    def __init__(self, val, weak):
        self.val = val
        self.weak = weak

    def to_string(self):
        kind = "WeakGreenlet" if self.weak else "Greenlet"
        try:
            inner = int(_handle_pointer(self.val))
            tables = _tables()
            if not tables:
                return kind + " @ 0x%x" % inner
            t = tables[0]
            ident = t.id_of_object(inner)
            g = Greenlet(t, inner - t.slot_inner, ident)
            if not ident:
                return "%s (released) @ 0x%x" % (kind, inner)
            parent = "" if g.parent is None else ", parent %d" % g.parent
            return "%s %d (%s%s%s)" % (kind, g.id, g.state, ", main" if g.is_main() else "", parent)
        except (gdb.error, gdb.MemoryError, ValueError, RuntimeError) as e:
            return "%s <unreadable: %s>" % (kind, e)


def _handle_pointer(val):
    # Greenlet { ptr: NonNull<Inner> { pointer: *const Inner }, .. }
    ptr = val["ptr"]
    try:
        return ptr["pointer"]
    except gdb.error:
        return ptr


_HANDLE = re.compile(r"^greenlet::(?:\w+::)*(Weak)?Greenlet$")


def _lookup_printer(val):
    ty = val.type.strip_typedefs()
    name = ty.tag or ty.name
    if not name:
        return None
    m = _HANDLE.match(name)
    if not m:
        return None
    return _GreenletPrinter(val, m.group(1) is not None)


def _install():
    if getattr(gdb, "_greenlet_rs_installed", False):
        return
    gdb._greenlet_rs_installed = True
    _InfoGreenlets()
    _GreenletCommand()
    if _register_unwinder is not None:
        _register_unwinder(None, _GreenletUnwinder(), replace=True)
    gdb.frame_filters["greenlet"] = _HideFirstFrame()
    gdb.pretty_printers.append(_lookup_printer)


_install()
