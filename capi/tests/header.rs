//! `include/socknotify.h` against the library: the C compiler checks every `sizeof`,
//! `offsetof` and constant the header declares against the values Rust computes, the
//! header compiles cleanly as strict C11 and C++17, and every numeric `#define` in it is
//! covered.

mod util;

use std::ffi::c_void;
use std::fmt::Write as _;
use std::mem::{offset_of, size_of};
use std::process::Command;

use socknotify_capi::codes::*;
use socknotify_capi::consts::*;
use socknotify_capi::{
    Bool, Dword, Handle, Overlapped, OverlappedEntry, OverlappedOffsets, SockNotifyRegistration,
    Socket, FALSE, MAX_ENTRIES_PER_CALL, TRUE,
};

/// Pairs each name with its Rust value; the C name is the Rust constant's name.
macro_rules! named {
    ($($name:ident),* $(,)?) => {
        vec![$((stringify!($name), i128::from($name))),*]
    };
}

/// Every numeric `#define` of the header with the library's value.
fn constants() -> Vec<(&'static str, i128)> {
    let mut all = named![
        TRUE,
        FALSE,
        SOCKET_ERROR,
        INFINITE,
        SOCK_NOTIFY_REGISTER_EVENT_NONE,
        SOCK_NOTIFY_REGISTER_EVENT_IN,
        SOCK_NOTIFY_REGISTER_EVENT_OUT,
        SOCK_NOTIFY_REGISTER_EVENT_HANGUP,
        SOCK_NOTIFY_REGISTER_EVENTS_ALL,
        SOCK_NOTIFY_EVENT_IN,
        SOCK_NOTIFY_EVENT_OUT,
        SOCK_NOTIFY_EVENT_HANGUP,
        SOCK_NOTIFY_EVENT_ERR,
        SOCK_NOTIFY_EVENT_REMOVE,
        SOCK_NOTIFY_EVENTS_ALL,
        SOCK_NOTIFY_OP_NONE,
        SOCK_NOTIFY_OP_ENABLE,
        SOCK_NOTIFY_OP_DISABLE,
        SOCK_NOTIFY_OP_REMOVE,
        SOCK_NOTIFY_TRIGGER_ONESHOT,
        SOCK_NOTIFY_TRIGGER_PERSISTENT,
        SOCK_NOTIFY_TRIGGER_LEVEL,
        SOCK_NOTIFY_TRIGGER_EDGE,
        SOCK_NOTIFY_TRIGGER_ALL,
        ERROR_SUCCESS,
        ERROR_TOO_MANY_OPEN_FILES,
        ERROR_ACCESS_DENIED,
        ERROR_INVALID_HANDLE,
        ERROR_NOT_ENOUGH_MEMORY,
        ERROR_NOT_SUPPORTED,
        ERROR_INVALID_PARAMETER,
        ERROR_ALREADY_EXISTS,
        WAIT_TIMEOUT,
        ERROR_ABANDONED_WAIT_0,
        ERROR_NOT_FOUND,
        ERROR_UNIDENTIFIED_ERROR,
        ERROR_INTERNAL_ERROR,
        ERROR_NO_SYSTEM_RESOURCES,
        ERROR_TIMEOUT,
        WSA_INVALID_HANDLE,
        WSA_NOT_ENOUGH_MEMORY,
        WSA_INVALID_PARAMETER,
        WSA_WAIT_TIMEOUT,
        WAIT_OBJECT_0,
        WAIT_ABANDONED_0,
        WAIT_IO_COMPLETION,
        WAIT_FAILED,
        MAXIMUM_WAIT_OBJECTS,
        STILL_ACTIVE,
        WSAEINTR,
        WSAEBADF,
        WSAEACCES,
        WSAEFAULT,
        WSAEINVAL,
        WSAEMFILE,
        WSAEWOULDBLOCK,
        WSAEINPROGRESS,
        WSAEALREADY,
        WSAENOTSOCK,
        WSAEDESTADDRREQ,
        WSAEMSGSIZE,
        WSAEPROTOTYPE,
        WSAENOPROTOOPT,
        WSAEPROTONOSUPPORT,
        WSAESOCKTNOSUPPORT,
        WSAEOPNOTSUPP,
        WSAEPFNOSUPPORT,
        WSAEAFNOSUPPORT,
        WSAEADDRINUSE,
        WSAEADDRNOTAVAIL,
        WSAENETDOWN,
        WSAENETUNREACH,
        WSAENETRESET,
        WSAECONNABORTED,
        WSAECONNRESET,
        WSAENOBUFS,
        WSAEISCONN,
        WSAENOTCONN,
        WSAESHUTDOWN,
        WSAETOOMANYREFS,
        WSAETIMEDOUT,
        WSAECONNREFUSED,
        WSAELOOP,
        WSAENAMETOOLONG,
        WSAEHOSTDOWN,
        WSAEHOSTUNREACH,
        WSAVERNOTSUPPORTED,
        SOCKNOTIFY_ERRNO_LAST_ERROR,
    ];
    all.push((
        "SOCKNOTIFY_MAX_ENTRIES_PER_CALL",
        i128::try_from(MAX_ENTRIES_PER_CALL).unwrap(),
    ));
    all
}

/// Defines a C preprocessor can't compare as integers; each is checked some other way.
const NOT_INTEGERS: &[(&str, &str)] = &[
    (
        "INVALID_HANDLE_VALUE",
        "a pointer; tests/c/misuse.c creates a port with it",
    ),
    (
        "INVALID_SOCKET",
        "a SOCKET, (SOCKET)~0: checked against INVALID_SOCKET's bits in check_source",
    ),
    ("WINAPI", "a calling convention, empty on Linux"),
    ("WSAAPI", "a calling convention, empty on Linux"),
];

/// `sizeof`/`offsetof` facts: (C expression, Rust value).
fn layout() -> Vec<(&'static str, usize)> {
    type R = SockNotifyRegistration;
    type E = OverlappedEntry;
    type O = Overlapped;
    vec![
        ("sizeof(SOCKET)", size_of::<Socket>()),
        ("sizeof(UINT_PTR)", size_of::<usize>()),
        ("sizeof(OVERLAPPED)", size_of::<O>()),
        ("_Alignof(OVERLAPPED)", std::mem::align_of::<O>()),
        ("offsetof(OVERLAPPED, Internal)", offset_of!(O, internal)),
        (
            "offsetof(OVERLAPPED, InternalHigh)",
            offset_of!(O, internal_high),
        ),
        ("offsetof(OVERLAPPED, Offset)", offset_of!(O, offset)),
        (
            "offsetof(OVERLAPPED, OffsetHigh)",
            offset_of!(O, offset) + offset_of!(OverlappedOffsets, offset_high),
        ),
        ("offsetof(OVERLAPPED, Pointer)", offset_of!(O, offset)),
        ("offsetof(OVERLAPPED, hEvent)", offset_of!(O, h_event)),
        ("sizeof(DWORD)", size_of::<Dword>()),
        ("sizeof(BOOL)", size_of::<Bool>()),
        ("sizeof(HANDLE)", size_of::<Handle>()),
        ("sizeof(PVOID)", size_of::<*mut c_void>()),
        ("sizeof(ULONG)", size_of::<u32>()),
        ("sizeof(ULONG_PTR)", size_of::<usize>()),
        ("sizeof(UINT8)", 1),
        ("sizeof(UINT16)", 2),
        ("sizeof(UINT32)", 4),
        ("sizeof(SOCK_NOTIFY_REGISTRATION)", size_of::<R>()),
        (
            "_Alignof(SOCK_NOTIFY_REGISTRATION)",
            std::mem::align_of::<R>(),
        ),
        (
            "offsetof(SOCK_NOTIFY_REGISTRATION, socket)",
            offset_of!(R, socket),
        ),
        (
            "offsetof(SOCK_NOTIFY_REGISTRATION, completionKey)",
            offset_of!(R, completion_key),
        ),
        (
            "offsetof(SOCK_NOTIFY_REGISTRATION, eventFilter)",
            offset_of!(R, event_filter),
        ),
        (
            "offsetof(SOCK_NOTIFY_REGISTRATION, operation)",
            offset_of!(R, operation),
        ),
        (
            "offsetof(SOCK_NOTIFY_REGISTRATION, triggerFlags)",
            offset_of!(R, trigger_flags),
        ),
        (
            "offsetof(SOCK_NOTIFY_REGISTRATION, registrationResult)",
            offset_of!(R, registration_result),
        ),
        ("sizeof(((SOCK_NOTIFY_REGISTRATION *)0)->eventFilter)", 2),
        ("sizeof(((SOCK_NOTIFY_REGISTRATION *)0)->operation)", 1),
        ("sizeof(((SOCK_NOTIFY_REGISTRATION *)0)->triggerFlags)", 1),
        (
            "sizeof(((SOCK_NOTIFY_REGISTRATION *)0)->registrationResult)",
            4,
        ),
        ("sizeof(OVERLAPPED_ENTRY)", size_of::<E>()),
        ("_Alignof(OVERLAPPED_ENTRY)", std::mem::align_of::<E>()),
        (
            "offsetof(OVERLAPPED_ENTRY, lpCompletionKey)",
            offset_of!(E, completion_key),
        ),
        (
            "offsetof(OVERLAPPED_ENTRY, lpOverlapped)",
            offset_of!(E, overlapped),
        ),
        (
            "offsetof(OVERLAPPED_ENTRY, Internal)",
            offset_of!(E, internal),
        ),
        (
            "offsetof(OVERLAPPED_ENTRY, dwNumberOfBytesTransferred)",
            offset_of!(E, bytes_transferred),
        ),
        (
            "sizeof(((OVERLAPPED_ENTRY *)0)->dwNumberOfBytesTransferred)",
            4,
        ),
    ]
}

/// The C file that makes the compiler check the header against the values above. It
/// also pins each function's prototype to the Windows signature.
fn check_source() -> String {
    let mut c = String::from(
        "#include <stddef.h>\n#include \"socknotify.h\"\n\
         #ifdef __cplusplus\n#define CHECK(e) static_assert(e, #e)\n#define ALIGNOF alignof\n\
         #else\n#define CHECK(e) _Static_assert(e, #e)\n#define ALIGNOF _Alignof\n#endif\n",
    );
    for (name, value) in constants() {
        // Parenthesised and compared in a wide type, so a sign or width slip shows.
        writeln!(c, "CHECK((long long)({name}) == {value}LL);").unwrap();
    }
    for (expr, value) in layout() {
        let expr = expr.replace("_Alignof", "ALIGNOF");
        writeln!(c, "CHECK({expr} == {value});").unwrap();
    }
    c.push_str(
        "CHECK((SOCKET)-1 > 0);\nCHECK((SOCKET)-1 == INVALID_SOCKET);\n\
         CHECK(INVALID_SOCKET == (SOCKET)UINTPTR_MAX);\nCHECK(sizeof(SOCKET) == sizeof(void *));\n\
         CHECK((DWORD)-1 > 0);\nCHECK((ULONG_PTR)-1 > 0);\n\
         int check_signatures(void);\n\
         int check_signatures(void) {\n\
         HANDLE (*create)(HANDLE, HANDLE, ULONG_PTR, DWORD) = CreateIoCompletionPort;\n\
         DWORD (*process)(HANDLE, UINT32, SOCK_NOTIFY_REGISTRATION *, UINT32, ULONG,\n\
             OVERLAPPED_ENTRY *, UINT32 *) = ProcessSocketNotifications;\n\
         BOOL (*dequeue)(HANDLE, OVERLAPPED_ENTRY *, ULONG, ULONG *, DWORD, BOOL) =\n\
             GetQueuedCompletionStatusEx;\n\
         BOOL (*post)(HANDLE, DWORD, ULONG_PTR, OVERLAPPED *) = PostQueuedCompletionStatus;\n\
         BOOL (*get1)(HANDLE, DWORD *, ULONG_PTR *, OVERLAPPED **, DWORD) =\n\
             GetQueuedCompletionStatus;\n\
         BOOL (*close)(HANDLE) = CloseHandle;\n\
         BOOL (*close2)(HANDLE) = SocknotifyCloseHandle;\n\
         BOOL (*begin)(HANDLE) = SocknotifyBlockingBegin;\n\
         BOOL (*end)(HANDLE) = SocknotifyBlockingEnd;\n\
         DWORD (*wsa)(void) = SocknotifyWSAGetLastError;\n\
         DWORD (*map)(int) = SocknotifyErrnoToWinsock;\n\
         struct _OVERLAPPED *tag1 = (OVERLAPPED *)NULL;\n\
         struct _OVERLAPPED_ENTRY *tag2 = (LPOVERLAPPED_ENTRY)NULL;\n\
         DWORD (*get)(void) = GetLastError;\n\
         void (*set)(DWORD) = SetLastError;\n\
         UINT32 (*events)(OVERLAPPED_ENTRY *) = SocketNotificationRetrieveEvents;\n\
         return create != NULL && process != NULL && dequeue != NULL && post != NULL &&\n\
             get1 != NULL && close != NULL && close2 != NULL && begin != NULL && end != NULL &&\n\
             wsa != NULL && map != NULL && tag1 == NULL && tag2 == NULL &&\n\
             get != NULL && set != NULL && events != NULL;\n}\n",
    );
    c
}

/// The Rust side of the same prototypes: this does not compile if they drift apart.
#[test]
fn rust_signatures_match_the_windows_prototypes() {
    let _: extern "C" fn(Handle, Handle, usize, Dword) -> Handle =
        socknotify_capi::create_io_completion_port;
    let _: unsafe extern "C" fn(
        Handle,
        u32,
        *mut SockNotifyRegistration,
        u32,
        u32,
        *mut OverlappedEntry,
        *mut u32,
    ) -> Dword = socknotify_capi::process_socket_notifications;
    let _: unsafe extern "C" fn(Handle, *mut OverlappedEntry, u32, *mut u32, Dword, Bool) -> Bool =
        socknotify_capi::get_queued_completion_status_ex;
    let _: extern "C" fn(Handle, Dword, usize, *mut Overlapped) -> Bool =
        socknotify_capi::post_queued_completion_status;
    let _: extern "C" fn(Handle) -> Bool = socknotify_capi::close_handle;
    let _: extern "C" fn(Handle) -> Bool = socknotify_capi::socknotify_close_handle;
    let _: unsafe extern "C" fn(
        Handle,
        *mut Dword,
        *mut usize,
        *mut *mut Overlapped,
        Dword,
    ) -> Bool = socknotify_capi::get_queued_completion_status;
    let _: extern "C" fn(Handle) -> Bool = socknotify_capi::blocking_begin;
    let _: extern "C" fn(Handle) -> Bool = socknotify_capi::blocking_end;
    let _: extern "C" fn() -> Dword = socknotify_capi::wsa_get_last_error;
    let _: extern "C" fn(libc::c_int) -> Dword = socknotify_capi::errno_to_winsock;
    let _: extern "C" fn() -> Dword = socknotify_capi::get_last_error;
    let _: extern "C" fn(Dword) = socknotify_capi::set_last_error;
}

fn compile_check(compiler: &str, flags: &[&str], lang: &str, test: &str) {
    let dir = util::scratch(test);
    let source = dir.join(if lang == "c" { "check.c" } else { "check.cpp" });
    std::fs::write(&source, check_source()).unwrap();
    let mut cmd = Command::new(compiler);
    cmd.args(flags)
        .arg("-c")
        .arg("-I")
        .arg(util::include_dir())
        .arg(&source)
        .arg("-o")
        .arg(dir.join("check.o"));
    util::run_tool(cmd);
}

#[test]
fn c11_compiler_agrees_with_the_library() {
    compile_check("cc", util::C_FLAGS, "c", "header-c11");
}

#[test]
fn cxx17_compiler_agrees_with_the_library() {
    compile_check("c++", util::CXX_FLAGS, "c++", "header-cxx17");
}

/// A mismatch must fail: the check is only worth something if the compiler refuses a
/// wrong value.
#[test]
fn a_wrong_value_is_refused() {
    let dir = util::scratch("header-wrong");
    let source = dir.join("wrong.c");
    std::fs::write(
        &source,
        "#include \"socknotify.h\"\n_Static_assert(WAIT_TIMEOUT == 259, \"wrong\");\n",
    )
    .unwrap();
    let out = Command::new("cc")
        .args(util::C_FLAGS)
        .args(["-fsyntax-only", "-I"])
        .arg(util::include_dir())
        .arg(&source)
        .output()
        .expect("run cc");
    assert!(!out.status.success(), "cc accepted a wrong constant");
}

/// Every `#define` with a value is in [`constants`] (or [`NOT_INTEGERS`]), and the other
/// way round: nothing is declared without being checked.
#[test]
fn every_define_in_the_header_is_checked() {
    let header = std::fs::read_to_string(util::include_dir().join("socknotify.h")).unwrap();
    let checked: Vec<&str> = constants().iter().map(|(n, _)| *n).collect();
    let mut defined = Vec::new();
    for line in header.lines() {
        let Some(rest) = line.trim_start().strip_prefix("#define") else {
            continue;
        };
        let mut words = rest.split_whitespace();
        let name = words.next().expect("a name after #define");
        assert!(
            !name.contains('('),
            "function-like macro {name} is not checked"
        );
        if words.next().is_none() {
            continue; // the include guard
        }
        defined.push(name);
        let covered = checked.contains(&name) || NOT_INTEGERS.iter().any(|(n, _)| *n == name);
        assert!(covered, "{name} is defined in the header but not checked");
    }
    for name in checked {
        assert!(defined.contains(&name), "{name} is checked but not defined");
    }
}

/// The header alone, included twice, in C and C++, with the strict flags.
#[test]
fn header_compiles_cleanly_as_c_and_cxx() {
    let dir = util::scratch("header-alone");
    for (compiler, flags, file) in [
        ("cc", util::C_FLAGS, "alone.c"),
        ("c++", util::CXX_FLAGS, "alone.cpp"),
    ] {
        let source = dir.join(file);
        std::fs::write(
            &source,
            "#include \"socknotify.h\"\n#include \"socknotify.h\"\n\
             int main(void) {\n\
             OVERLAPPED_ENTRY entry = {0, NULL, 0, SOCK_NOTIFY_EVENT_IN};\n\
             SOCK_NOTIFY_REGISTRATION r = {INVALID_SOCKET, NULL, SOCK_NOTIFY_REGISTER_EVENTS_ALL,\n\
                 SOCK_NOTIFY_OP_ENABLE, SOCK_NOTIFY_TRIGGER_ONESHOT | SOCK_NOTIFY_TRIGGER_LEVEL,\n\
                 ERROR_SUCCESS};\n\
             return (int)(SocketNotificationRetrieveEvents(&entry) & ~(UINT32)r.eventFilter);\n}\n",
        )
        .unwrap();
        let mut cmd = Command::new(compiler);
        cmd.args(flags)
            .args(["-fsyntax-only", "-I"])
            .arg(util::include_dir())
            .arg(&source);
        util::run_tool(cmd);
    }
}

/// The compatibility header, alone and after `socknotify.h`, in C and C++ with the strict
/// flags; its own Windows layout (WSADATA, SRWLOCK) checked too.
#[test]
fn compatibility_header_compiles_cleanly_as_c_and_cxx() {
    let dir = util::scratch("header-compat");
    let body = "#include \"socknotify.h\"\n#include <socknotify/winsock2.h>\n\
        #include <socknotify/winsock2.h>\n\
        #ifdef __cplusplus\n#define CHECK(e) static_assert(e, #e)\n\
        #else\n#define CHECK(e) _Static_assert(e, #e)\n#endif\n\
        CHECK(sizeof(WSADATA) == 408);\nCHECK(offsetof(WSADATA, lpVendorInfo) == 8);\n\
        CHECK(offsetof(WSADATA, szDescription) == 16);\nCHECK(sizeof(SRWLOCK) == sizeof(void *));\n\
        CHECK(SD_BOTH == SHUT_RDWR);\nCHECK(SD_SEND == SHUT_WR);\nCHECK(SD_RECEIVE == SHUT_RD);\n\
        CHECK(WINSOCK_VERSION == 0x0202);\n\
        static DWORD WINAPI routine(PVOID p) { (void)p; return 0; }\n\
        int main(void) {\n\
        WSADATA data; SRWLOCK lock = SRWLOCK_INIT; sockaddr_in address; u_long on = 1;\n\
        HANDLE thread = CreateThread(NULL, 0, routine, NULL, 0, NULL);\n\
        ZeroMemory(&address, sizeof address);\n\
        AcquireSRWLockExclusive(&lock); ReleaseSRWLockExclusive(&lock);\n\
        return WSAStartup(WINSOCK_VERSION, &data) + ioctlsocket(INVALID_SOCKET, FIONBIO, &on) +\n\
            (int)WaitForSingleObject(thread, INFINITE) + (int)CloseHandle(thread) +\n\
            WSAGetLastError() + (int)GetLastError() + WSACleanup();\n}\n";
    for (compiler, flags, file) in [
        ("cc", util::C_FLAGS, "compat.c"),
        ("c++", util::CXX_FLAGS, "compat.cpp"),
    ] {
        let source = dir.join(file);
        std::fs::write(&source, body).unwrap();
        let mut cmd = Command::new(compiler);
        cmd.args(flags)
            .args(["-fsyntax-only", "-I"])
            .arg(util::include_dir())
            .arg(&source);
        util::run_tool(cmd);
    }
}
