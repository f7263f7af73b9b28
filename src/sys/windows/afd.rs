//! `\Device\Afd`: the Winsock driver's poll request, and the socket queries around it.
//!
//! `IOCTL_AFD_POLL` is what `WSAPoll` and `select` use inside Winsock; issued on a handle
//! to the AFD device that is associated with a completion port, it completes to that port
//! when one of the requested events holds. The layout and the calls are those of wepoll,
//! mio (`sys/windows/afd.rs`) and polling (`iocp/afd.rs`).

use std::ffi::c_void;
use std::io;
use std::mem::{size_of, size_of_val};
use std::os::windows::io::RawSocket;
use std::ptr;
use std::sync::OnceLock;

use windows_sys::Wdk::Foundation::OBJECT_ATTRIBUTES;
use windows_sys::Wdk::Storage::FileSystem::{NtCancelIoFileEx, NtCreateFile, FILE_OPEN};
use windows_sys::Wdk::System::IO::NtDeviceIoControlFile;
use windows_sys::Win32::Foundation::{
    CloseHandle, GetHandleInformation, RtlNtStatusToDosError, HANDLE, NTSTATUS, STATUS_NOT_FOUND,
    STATUS_PENDING, STATUS_SUCCESS, UNICODE_STRING,
};
use windows_sys::Win32::Networking::WinSock::{
    getpeername, getsockname, getsockopt, WSAGetLastError, WSAIoctl, WSAStartup, SIO_BASE_HANDLE,
    SIO_BSP_HANDLE_POLL, SOCKADDR, SOCKET_ERROR, SOCK_DGRAM, SOCK_RAW, SOL_SOCKET, SO_TYPE,
    WSADATA,
};
use windows_sys::Win32::Storage::FileSystem::{
    SetFileCompletionNotificationModes, FILE_SHARE_READ, FILE_SHARE_WRITE, SYNCHRONIZE,
};
use windows_sys::Win32::System::WindowsProgramming::FILE_SKIP_SET_EVENT_ON_HANDLE;
use windows_sys::Win32::System::IO::IO_STATUS_BLOCK;

use super::port::Port;

const IOCTL_AFD_POLL: u32 = 0x0001_2024;

// AFD poll events (wepoll's and mio's names without the prefix).
pub(super) const RECEIVE: u32 = 0x0001;
pub(super) const SEND: u32 = 0x0004;
/// The peer shut down its sending side (a FIN).
pub(super) const DISCONNECT: u32 = 0x0008;
/// The connection was reset or aborted.
pub(super) const ABORT: u32 = 0x0010;
/// This process closed the socket (`closesocket`, `CloseHandle`): the poll is over for good.
pub(super) const LOCAL_CLOSE: u32 = 0x0020;
// CONNECT (0x0040) is not used: it is reported on every poll of a connected socket, not
// only once (wepoll 8b7b340, mio). A completed connect shows as SEND.
pub(super) const ACCEPT: u32 = 0x0080;
pub(super) const CONNECT_FAIL: u32 = 0x0100;

/// The argument and result of one `IOCTL_AFD_POLL` on one socket.
#[repr(C)]
#[derive(Debug)]
pub(super) struct PollInfo {
    timeout: i64,
    number_of_handles: u32,
    exclusive: u32,
    handle: HANDLE,
    events: u32,
    status: NTSTATUS,
}

impl PollInfo {
    pub(super) const fn new() -> PollInfo {
        PollInfo {
            timeout: 0,
            number_of_handles: 0,
            exclusive: 0,
            handle: ptr::null_mut(),
            events: 0,
            status: 0,
        }
    }

    /// The events the completed poll reported, or `None` when it reported no socket.
    pub(super) fn events(&self) -> Option<u32> {
        (self.number_of_handles >= 1).then_some(self.events)
    }
}

/// One handle to the AFD device, associated with a selector's completion port.
///
/// Every poll issued through it completes to that port with the completion key given to
/// [`Afd::new`] and the poll's context pointer as the entry's `lpOverlapped`.
#[derive(Debug)]
pub(super) struct Afd {
    handle: HANDLE,
}

// SAFETY: `handle` is a kernel handle owned by this value; the calls made on it
// (NtDeviceIoControlFile, NtCancelIoFileEx, CloseHandle) may come from any thread.
unsafe impl Send for Afd {}
// SAFETY: as for Send; no method mutates the value itself.
unsafe impl Sync for Afd {}

impl Afd {
    /// Opens `\Device\Afd\Socknotify` and associates it with `port` under `key`.
    pub(super) fn new(port: &Port, key: usize) -> io::Result<Afd> {
        // Any name below \Device\Afd opens the driver without creating an endpoint.
        const NAME: &[u16] = &utf16(b"\\Device\\Afd\\Socknotify");
        let name = UNICODE_STRING {
            Length: size_of_val(NAME) as u16,
            MaximumLength: size_of_val(NAME) as u16,
            Buffer: NAME.as_ptr().cast_mut(),
        };
        let attributes = OBJECT_ATTRIBUTES {
            Length: size_of::<OBJECT_ATTRIBUTES>() as u32,
            RootDirectory: ptr::null_mut(),
            ObjectName: &name,
            Attributes: 0,
            SecurityDescriptor: ptr::null(),
            SecurityQualityOfService: ptr::null(),
        };
        let mut handle: HANDLE = ptr::null_mut();
        let mut iosb = IO_STATUS_BLOCK::default();
        // SAFETY: every pointer names a live local of the type NtCreateFile expects; the
        // call is synchronous (no FILE_FLAG_OVERLAPPED), so `iosb` outlives its use.
        let status = unsafe {
            NtCreateFile(
                &mut handle,
                SYNCHRONIZE,
                &attributes,
                &mut iosb,
                ptr::null(),
                0,
                FILE_SHARE_READ | FILE_SHARE_WRITE,
                FILE_OPEN,
                0,
                ptr::null(),
                0,
            )
        };
        if status != STATUS_SUCCESS {
            return Err(nt_error(status));
        }
        let afd = Afd { handle };
        port.associate(afd.handle, key)?;
        // SAFETY: `afd.handle` is the open handle created above.
        if unsafe {
            SetFileCompletionNotificationModes(afd.handle, FILE_SKIP_SET_EVENT_ON_HANDLE as u8)
        } == 0
        {
            return Err(io::Error::last_os_error());
        }
        Ok(afd)
    }

    /// Issues a poll of `socket` for `events`, completing to the port with `context`.
    ///
    /// Returns `Ok` when the poll is under way (or already complete: either way an entry
    /// will reach the port), and the NTSTATUS when the request was refused, in which case
    /// nothing will reach the port.
    ///
    /// # Safety
    ///
    /// `iosb` and `info` must stay valid, pinned and untouched by anything but the kernel
    /// until the entry for this poll has been dequeued from the port; no other poll may be
    /// using them.
    pub(super) unsafe fn poll(
        &self,
        iosb: *mut IO_STATUS_BLOCK,
        info: *mut PollInfo,
        socket: RawSocket,
        events: u32,
        context: *const c_void,
    ) -> Result<(), NTSTATUS> {
        // SAFETY: the caller guarantees that no poll uses `info` and `iosb` now.
        unsafe {
            info.write(PollInfo {
                timeout: i64::MAX,
                number_of_handles: 1,
                exclusive: 0,
                handle: socket as HANDLE,
                events,
                status: 0,
            });
            (*iosb).Anonymous.Status = STATUS_PENDING;
        }
        // SAFETY: `self.handle` is open; the caller keeps `iosb` and `info` valid until the
        // completion is dequeued, which is what an asynchronous request needs.
        let status = unsafe {
            NtDeviceIoControlFile(
                self.handle,
                ptr::null_mut(),
                None,
                context,
                iosb,
                IOCTL_AFD_POLL,
                info.cast(),
                size_of::<PollInfo>() as u32,
                info.cast(),
                size_of::<PollInfo>() as u32,
            )
        };
        match status {
            STATUS_SUCCESS | STATUS_PENDING => Ok(()),
            status => Err(status),
        }
    }

    /// Asks the kernel to cancel the poll that uses `iosb`; returns at once. The poll then
    /// completes (as cancelled, or with the events it saw first) like any other.
    ///
    /// # Safety
    ///
    /// `iosb` must be the block of a poll issued through this handle whose completion has
    /// not been dequeued yet (the pointer only identifies the request; nothing is read).
    pub(super) unsafe fn cancel(&self, iosb: *mut IO_STATUS_BLOCK) -> io::Result<()> {
        let mut cancel_iosb = IO_STATUS_BLOCK::default();
        // SAFETY: `self.handle` is open; `iosb` identifies a request on it (or one that just
        // completed, which gives STATUS_NOT_FOUND); `cancel_iosb` is a live local.
        let status = unsafe { NtCancelIoFileEx(self.handle, iosb, &mut cancel_iosb) };
        match status {
            // NOT_FOUND: the poll completed just before; its entry is on its way.
            STATUS_SUCCESS | STATUS_NOT_FOUND => Ok(()),
            status => Err(nt_error(status)),
        }
    }
}

impl Drop for Afd {
    fn drop(&mut self) {
        // SAFETY: the handle is owned by `self` and closed only here. Polls still pending
        // on it are cancelled by the close; their memory is kept alive by their owners.
        unsafe { CloseHandle(self.handle) };
    }
}

/// An NTSTATUS as the Win32 error it stands for.
pub(super) fn nt_error(status: NTSTATUS) -> io::Error {
    // SAFETY: a pure conversion with no preconditions.
    io::Error::from_raw_os_error(unsafe { RtlNtStatusToDosError(status) } as i32)
}

/// The base (provider) socket of `socket`, which AFD polls: as wepoll's
/// `ws_get_base_socket`, with the `SIO_BSP_HANDLE_POLL` fallback for layered providers
/// that intercept `SIO_BASE_HANDLE`.
///
/// # Errors
/// `WSAENOTSOCK` for a handle that is not a socket (or a closed one).
pub(super) fn base_socket(socket: RawSocket) -> io::Result<RawSocket> {
    init_winsock();
    let mut socket = socket;
    loop {
        let err = match socket_ioctl(socket, SIO_BASE_HANDLE) {
            Ok(base) => return Ok(base),
            Err(err) => err,
        };
        if err.raw_os_error() == Some(windows_sys::Win32::Networking::WinSock::WSAENOTSOCK) {
            return Err(err);
        }
        match socket_ioctl(socket, SIO_BSP_HANDLE_POLL) {
            Ok(next) if next != socket => socket = next,
            _ => return Err(err),
        }
    }
}

/// What a socket shows of itself, to tell two sockets apart where user mode cannot compare
/// the objects (a closed handle's value reused while a duplicate keeps the old socket
/// open): its type, its local port once bound, and a stream's peer once connected. None of
/// these changes for the life of a socket once it is set, so two fingerprints that both
/// have one and differ in it are two sockets; one that lacks it tells nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Fingerprint {
    ty: Option<i32>,
    local_port: Option<u16>,
    /// The peer's address as `getpeername` wrote it (its length, then its bytes).
    peer: Option<(i32, [u8; 28])>,
}

impl Fingerprint {
    /// The fingerprint of the socket `socket` names now.
    ///
    /// # Errors
    /// As [`socket_type`]: `WSAENOTSOCK` where `socket` names no socket (or is closed).
    pub(super) fn of(socket: RawSocket) -> io::Result<Fingerprint> {
        let ty = socket_type(socket)?;
        let local = address(socket, getsockname);
        let port = local.map(|(_, a)| u16::from_be_bytes([a[2], a[3]]));
        let datagram = ty == SOCK_DGRAM || ty == SOCK_RAW;
        Ok(Fingerprint {
            ty: Some(ty),
            local_port: port.filter(|&p| p != 0),
            peer: if datagram {
                None // a datagram socket may connect again, elsewhere
            } else {
                address(socket, getpeername)
            },
        })
    }

    /// Whether the two are surely of two different sockets.
    pub(super) fn differs(&self, other: &Fingerprint) -> bool {
        differ(self.ty, other.ty)
            || differ(self.local_port, other.local_port)
            || differ(self.peer, other.peer)
    }

    /// Takes from `now`, a later fingerprint of the same socket, what this one lacks.
    pub(super) fn learn(&mut self, now: Fingerprint) {
        self.ty = self.ty.or(now.ty);
        self.local_port = self.local_port.or(now.local_port);
        self.peer = self.peer.or(now.peer);
    }
}

/// Whether both are set and not equal.
fn differ<T: PartialEq>(a: Option<T>, b: Option<T>) -> bool {
    matches!((a, b), (Some(a), Some(b)) if a != b)
}

/// `getsockname` or `getpeername` of `socket`: the address's length and its bytes (an
/// IPv4 or IPv6 address, port first after the family), or `None` where it has none.
fn address(
    socket: RawSocket,
    call: unsafe extern "system" fn(usize, *mut SOCKADDR, *mut i32) -> i32,
) -> Option<(i32, [u8; 28])> {
    let mut storage = [0u8; 28];
    let mut len = storage.len() as i32;
    // SAFETY: `storage` is a live buffer of `len` bytes, room for a SOCKADDR_IN6 (28 bytes),
    // the largest address of a TCP or UDP socket; the call writes at most `len` bytes and
    // sets `len` to what it wrote (a bad socket only makes it fail).
    let rc = unsafe { call(socket as usize, storage.as_mut_ptr().cast(), &mut len) };
    (rc == 0 && len >= 4).then_some((len, storage))
}

/// Whether `handle` is an open handle (of any kind) in this process.
pub(super) fn is_open(handle: RawSocket) -> bool {
    let mut flags = 0u32;
    // SAFETY: GetHandleInformation only reads the handle table; `flags` is a live local.
    unsafe { GetHandleInformation(handle as HANDLE, &mut flags) != 0 }
}

/// Whether `socket` is a datagram (or raw) socket, which never reports a hangup.
pub(super) fn is_datagram(socket: RawSocket) -> io::Result<bool> {
    socket_type(socket).map(|ty| ty == SOCK_DGRAM || ty == SOCK_RAW)
}

/// The type of the socket `socket` names (`SO_TYPE`: `SOCK_STREAM`, `SOCK_DGRAM`, ...).
///
/// # Errors
/// `WSAENOTSOCK` for a handle that is not a socket (or a closed one).
pub(super) fn socket_type(socket: RawSocket) -> io::Result<i32> {
    let mut ty: i32 = 0;
    let mut len = size_of::<i32>() as i32;
    // SAFETY: `ty` and `len` are live locals of the sizes passed; any socket value is
    // acceptable (a bad one gives WSAENOTSOCK).
    let rc = unsafe {
        getsockopt(
            socket as usize,
            SOL_SOCKET,
            SO_TYPE,
            (&mut ty as *mut i32).cast(),
            &mut len,
        )
    };
    if rc == SOCKET_ERROR {
        return Err(last_wsa_error());
    }
    Ok(ty)
}

fn socket_ioctl(socket: RawSocket, code: u32) -> io::Result<RawSocket> {
    let mut out: RawSocket = 0;
    let mut bytes = 0u32;
    // SAFETY: `code` is one of the SIO_*_HANDLE ioctls, which take no input and write one
    // SOCKET to `out` (a live local of that size); no OVERLAPPED, so the call is synchronous.
    let rc = unsafe {
        WSAIoctl(
            socket as usize,
            code,
            ptr::null(),
            0,
            (&mut out as *mut RawSocket).cast(),
            size_of::<RawSocket>() as u32,
            &mut bytes,
            ptr::null_mut(),
            None,
        )
    };
    if rc == SOCKET_ERROR {
        return Err(last_wsa_error());
    }
    Ok(out)
}

fn last_wsa_error() -> io::Error {
    // SAFETY: reads the calling thread's last Winsock error; no preconditions.
    io::Error::from_raw_os_error(unsafe { WSAGetLastError() })
}

/// Winsock must be started before `WSAIoctl` answers anything but `WSANOTINITIALISED`;
/// a handle from another library (or a file) may reach us before std started it.
pub(super) fn init_winsock() {
    static STARTED: OnceLock<()> = OnceLock::new();
    STARTED.get_or_init(|| {
        // SAFETY: WSADATA is plain data that WSAStartup fills in. The matching
        // WSACleanup is never called: Winsock stays up for the life of the process, as std
        // leaves it.
        let mut data: WSADATA = unsafe { std::mem::zeroed() };
        // SAFETY: `data` is a live local; 2.2 is the version every Windows provides.
        unsafe { WSAStartup(0x0202, &mut data) };
    });
}

/// An ASCII string as UTF-16, at compile time.
const fn utf16<const N: usize>(s: &[u8; N]) -> [u16; N] {
    let mut out = [0u16; N];
    let mut i = 0;
    while i < N {
        out[i] = s[i] as u16;
        i += 1;
    }
    out
}
