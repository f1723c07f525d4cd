// ztunnel-ts native addon: thin wrappers over the Linux socket calls Node cannot make
// (capture.md §3-§6). All policy lives in TypeScript (src/platform/linux-socket-factory.ts,
// src/inpod/zds-transport.ts); this file only makes syscalls and reports errno.
//
// Conventions:
// - Synchronous functions never throw on a failed syscall: they return a negative errno
//   (Node's convention), or an object on success. Wrong argument types throw TypeError.
// - Every fd created here is non-blocking and close-on-exec.
// - The only blocking-prone step, setns(2), runs on a libuv pool thread (socketInNetns); a
//   socket's netns is fixed when socket(2) runs, so every later call (bind, connect,
//   setsockopt) can run on the main thread.
// - Readiness (connect completion, a datagram to read) is observed with a uv_poll handle on
//   Node's own event loop (FdWatcher): nothing blocks a thread while waiting.
#include <napi.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <uv.h>
#include <v8.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

// linux/netfilter_ipv4.h and linux/netfilter_ipv6/ip6_tables.h (capture.md §5 table).
#ifndef SO_ORIGINAL_DST
#define SO_ORIGINAL_DST 80
#endif
#ifndef IP6T_SO_ORIGINAL_DST
#define IP6T_SO_ORIGINAL_DST 80
#endif

namespace {

// Our own netns, opened once at load: pool threads return to it after setns (capture.md §5).
int g_self_netns = -1;
int g_self_netns_errno = 0;
std::once_flag g_self_netns_once;

// The largest number of fds accepted in one datagram; more are discarded by the kernel and
// reported as MSG_CTRUNC (capture.md §6 treats that as an error).
constexpr int kMaxFds = 16;

Napi::Value Errno(Napi::Env env, int e) { return Napi::Number::New(env, -e); }

bool ArgInt(const Napi::CallbackInfo& info, size_t i, int* out) {
  if (info.Length() <= i || !info[i].IsNumber()) {
    Napi::TypeError::New(info.Env(), "argument " + std::to_string(i) + " must be a number")
        .ThrowAsJavaScriptException();
    return false;
  }
  *out = info[i].As<Napi::Number>().Int32Value();
  return true;
}

bool ArgUint(const Napi::CallbackInfo& info, size_t i, uint32_t* out) {
  if (info.Length() <= i || !info[i].IsNumber()) {
    Napi::TypeError::New(info.Env(), "argument " + std::to_string(i) + " must be a number")
        .ThrowAsJavaScriptException();
    return false;
  }
  *out = info[i].As<Napi::Number>().Uint32Value();
  return true;
}

bool ArgString(const Napi::CallbackInfo& info, size_t i, std::string* out) {
  if (info.Length() <= i || !info[i].IsString()) {
    Napi::TypeError::New(info.Env(), "argument " + std::to_string(i) + " must be a string")
        .ThrowAsJavaScriptException();
    return false;
  }
  *out = info[i].As<Napi::String>().Utf8Value();
  return true;
}

// A Node-style system error: message "<syscall> <CODE>", errno (negative), code, syscall.
Napi::Error ErrnoError(Napi::Env env, int e, const char* syscall) {
  const char* code = uv_err_name(-e);
  Napi::Error err = Napi::Error::New(env, std::string(syscall) + " " + code + " (" + strerror(e) + ")");
  err.Set("errno", Napi::Number::New(env, -e));
  err.Set("code", Napi::String::New(env, code));
  err.Set("syscall", Napi::String::New(env, syscall));
  return err;
}

// Text IP + port → sockaddr. The family follows the text (TypeScript matches it to the socket).
bool ParseAddr(const std::string& ip, int port, sockaddr_storage* ss, socklen_t* len) {
  memset(ss, 0, sizeof(*ss));
  auto* in4 = reinterpret_cast<sockaddr_in*>(ss);
  if (inet_pton(AF_INET, ip.c_str(), &in4->sin_addr) == 1) {
    in4->sin_family = AF_INET;
    in4->sin_port = htons(static_cast<uint16_t>(port));
    *len = sizeof(sockaddr_in);
    return true;
  }
  auto* in6 = reinterpret_cast<sockaddr_in6*>(ss);
  if (inet_pton(AF_INET6, ip.c_str(), &in6->sin6_addr) == 1) {
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(static_cast<uint16_t>(port));
    *len = sizeof(sockaddr_in6);
    return true;
  }
  return false;
}

Napi::Value AddrObject(Napi::Env env, const sockaddr_storage& ss) {
  char text[INET6_ADDRSTRLEN] = {0};
  int port = 0;
  int family = 0;
  if (ss.ss_family == AF_INET) {
    const auto* in4 = reinterpret_cast<const sockaddr_in*>(&ss);
    inet_ntop(AF_INET, &in4->sin_addr, text, sizeof(text));
    port = ntohs(in4->sin_port);
    family = 4;
  } else if (ss.ss_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&ss);
    inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof(text));
    port = ntohs(in6->sin6_port);
    family = 6;
  } else {
    return Errno(env, EAFNOSUPPORT);
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("ip", Napi::String::New(env, text));
  o.Set("port", Napi::Number::New(env, port));
  o.Set("family", Napi::Number::New(env, family));
  return o;
}

// ---------------------------------------------------------------------------------------------
// TCP sockets

// socketInNetns(netnsFd, family[, datagram]) → Promise<fd>. netnsFd < 0: ztunnel's own netns.
// datagram true: a UDP socket (the DNS proxy's in-pod listeners and upstream queries).
class SocketInNetnsWorker : public Napi::AsyncWorker {
 public:
  SocketInNetnsWorker(Napi::Env env, int netns_fd, int family, int type)
      : Napi::AsyncWorker(env, "ztunnelSocketInNetns"),
        deferred_(Napi::Promise::Deferred::New(env)),
        netns_fd_(netns_fd),
        family_(family),
        type_(type) {}

  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override {
    if (netns_fd_ >= 0) {
      if (g_self_netns < 0) {
        fail(g_self_netns_errno ? g_self_netns_errno : EBADF, "open /proc/self/ns/net");
        return;
      }
      if (setns(netns_fd_, CLONE_NEWNET) != 0) {
        fail(errno, "setns");
        return;
      }
    }
    fd_ = socket(family_, type_ | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd_ < 0) fail(errno, "socket");
    if (netns_fd_ >= 0 && setns(g_self_netns, CLONE_NEWNET) != 0) {
      // A pool thread left in a pod netns would silently create later sockets (and resolve DNS)
      // there. There is no safe way to go on; istio/ztunnel panics in the same case.
      fprintf(stderr, "ztunnel native: cannot return a thread to its own netns: %s\n", strerror(errno));
      abort();
    }
  }

  void OnOK() override {
    Napi::Env env = Env();
    if (err_ != 0) {
      deferred_.Reject(ErrnoError(env, err_, syscall_).Value());
    } else {
      deferred_.Resolve(Napi::Number::New(env, fd_));
    }
  }

  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  void fail(int e, const char* syscall) {
    err_ = e;
    syscall_ = syscall;
  }

  Napi::Promise::Deferred deferred_;
  int netns_fd_;
  int family_;
  int type_;
  int fd_ = -1;
  int err_ = 0;
  const char* syscall_ = "";
};

Napi::Value SocketInNetns(const Napi::CallbackInfo& info) {
  int netns_fd, family;
  if (!ArgInt(info, 0, &netns_fd) || !ArgInt(info, 1, &family)) return info.Env().Undefined();
  if (family != 4 && family != 6) {
    Napi::TypeError::New(info.Env(), "family must be 4 or 6").ThrowAsJavaScriptException();
    return info.Env().Undefined();
  }
  bool datagram = info.Length() > 2 && info[2].IsBoolean() && info[2].As<Napi::Boolean>().Value();
  auto* w = new SocketInNetnsWorker(info.Env(), netns_fd, family == 4 ? AF_INET : AF_INET6,
                                    datagram ? SOCK_DGRAM : SOCK_STREAM);
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

// socketOwnNetns(family[, datagram]) → fd | -errno: socket() in the calling thread's (ztunnel's
// own) netns, synchronously. For sockets that need options node:net cannot set (SO_MARK, IP_TOS,
// IP_TRANSPARENT) but no netns switch: no pool-thread hop (issue 12).
Napi::Value SocketOwnNetns(const Napi::CallbackInfo& info) {
  int family;
  if (!ArgInt(info, 0, &family)) return info.Env().Undefined();
  if (family != 4 && family != 6) {
    Napi::TypeError::New(info.Env(), "family must be 4 or 6").ThrowAsJavaScriptException();
    return info.Env().Undefined();
  }
  bool datagram = info.Length() > 1 && info[1].IsBoolean() && info[1].As<Napi::Boolean>().Value();
  int fd = socket(family == 4 ? AF_INET : AF_INET6, (datagram ? SOCK_DGRAM : SOCK_STREAM) | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return Errno(info.Env(), errno);
  return Napi::Number::New(info.Env(), fd);
}

// setSockOptInt(fd, level, name, value) → 0 | -errno
Napi::Value SetSockOptInt(const Napi::CallbackInfo& info) {
  int fd, level, name;
  uint32_t value;
  if (!ArgInt(info, 0, &fd) || !ArgInt(info, 1, &level) || !ArgInt(info, 2, &name) || !ArgUint(info, 3, &value))
    return info.Env().Undefined();
  int v = static_cast<int>(value);
  if (setsockopt(fd, level, name, &v, sizeof(v)) != 0) return Errno(info.Env(), errno);
  return Napi::Number::New(info.Env(), 0);
}

// setLingerReset(fd) → 0 | -errno: SO_LINGER {on, 0}, so closing the socket sends a TCP RST instead
// of a FIN (how a connection is reset when Node's own resetAndDestroy cannot be used).
Napi::Value SetLingerReset(const Napi::CallbackInfo& info) {
  int fd;
  if (!ArgInt(info, 0, &fd)) return info.Env().Undefined();
  struct linger l;
  l.l_onoff = 1;
  l.l_linger = 0;
  if (setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l)) != 0) return Errno(info.Env(), errno);
  return Napi::Number::New(info.Env(), 0);
}

// getSockOptInt(fd, level, name) → value (as unsigned 32-bit) | -errno
Napi::Value GetSockOptInt(const Napi::CallbackInfo& info) {
  int fd, level, name;
  if (!ArgInt(info, 0, &fd) || !ArgInt(info, 1, &level) || !ArgInt(info, 2, &name)) return info.Env().Undefined();
  int v = 0;
  socklen_t len = sizeof(v);
  if (getsockopt(fd, level, name, &v, &len) != 0) return Errno(info.Env(), errno);
  return Napi::Number::New(info.Env(), static_cast<uint32_t>(v));
}

// bindAddr(fd, ip, port) → 0 | -errno
Napi::Value BindAddr(const Napi::CallbackInfo& info) {
  int fd, port;
  std::string ip;
  if (!ArgInt(info, 0, &fd) || !ArgString(info, 1, &ip) || !ArgInt(info, 2, &port)) return info.Env().Undefined();
  sockaddr_storage ss;
  socklen_t len;
  if (!ParseAddr(ip, port, &ss, &len)) return Errno(info.Env(), EINVAL);
  if (bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) return Errno(info.Env(), errno);
  return Napi::Number::New(info.Env(), 0);
}

// connectAddr(fd, ip, port) → 0 | -EINPROGRESS | -errno (the socket is non-blocking)
Napi::Value ConnectAddr(const Napi::CallbackInfo& info) {
  int fd, port;
  std::string ip;
  if (!ArgInt(info, 0, &fd) || !ArgString(info, 1, &ip) || !ArgInt(info, 2, &port)) return info.Env().Undefined();
  sockaddr_storage ss;
  socklen_t len;
  if (!ParseAddr(ip, port, &ss, &len)) return Errno(info.Env(), EINVAL);
  int r;
  do {
    r = connect(fd, reinterpret_cast<sockaddr*>(&ss), len);
  } while (r != 0 && errno == EINTR);
  if (r != 0) return Errno(info.Env(), errno);
  return Napi::Number::New(info.Env(), 0);
}

// originalDst(fd) → {ip, port, family} | -errno (capture.md §3 steps 1-2; ENOENT: not redirected)
Napi::Value OriginalDst(const Napi::CallbackInfo& info) {
  int fd;
  if (!ArgInt(info, 0, &fd)) return info.Env().Undefined();
  sockaddr_storage ss;
  memset(&ss, 0, sizeof(ss));
  socklen_t len = sizeof(sockaddr_in);
  // IPv4 first: it also answers for IPv4 connections accepted on a dual-stack [::] socket.
  if (getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &ss, &len) == 0) return AddrObject(info.Env(), ss);
  memset(&ss, 0, sizeof(ss));
  len = sizeof(sockaddr_in6);
  if (getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, &ss, &len) == 0) return AddrObject(info.Env(), ss);
  return Errno(info.Env(), errno);
}

// ---------------------------------------------------------------------------------------------
// fds and namespaces

// netnsInode(fd) → st_ino | -errno (netns identity, capture.md §6 "different netns inode")
Napi::Value NetnsInode(const Napi::CallbackInfo& info) {
  int fd;
  if (!ArgInt(info, 0, &fd)) return info.Env().Undefined();
  struct stat st;
  if (fstat(fd, &st) != 0) return Errno(info.Env(), errno);
  return Napi::Number::New(info.Env(), static_cast<double>(st.st_ino));
}

// closeFd(fd) → 0 | -errno
Napi::Value CloseFd(const Napi::CallbackInfo& info) {
  int fd;
  if (!ArgInt(info, 0, &fd)) return info.Env().Undefined();
  // Linux always releases the fd, even when close reports EINTR: never retry.
  if (close(fd) != 0 && errno != EINTR) return Errno(info.Env(), errno);
  return Napi::Number::New(info.Env(), 0);
}

// A second fd for the same open socket (close-on-exec). Data-plane worker threads each adopt
// their own duplicate of a listener the main thread bound, so every thread can close its copy
// without closing the socket under the others (docs/workers.md).
Napi::Value DupFd(const Napi::CallbackInfo& info) {
  int fd;
  if (!ArgInt(info, 0, &fd)) return info.Env().Undefined();
  int dup = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (dup < 0) return Errno(info.Env(), errno);
  return Napi::Number::New(info.Env(), dup);
}

// ---------------------------------------------------------------------------------------------
// SOCK_SEQPACKET unix sockets (ZDS transport, capture.md §6)

bool UnixAddr(const std::string& path, sockaddr_un* sun, socklen_t* len) {
  if (path.empty() || path.size() >= sizeof(sun->sun_path)) return false;
  memset(sun, 0, sizeof(*sun));
  sun->sun_family = AF_UNIX;
  memcpy(sun->sun_path, path.data(), path.size());
  *len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + 1);
  return true;
}

// seqpacketConnect(path) → fd | -errno. A unix connect completes at once (or EAGAIN when the
// listener's backlog is full, which the caller retries like a refused connect).
Napi::Value SeqpacketConnect(const Napi::CallbackInfo& info) {
  std::string path;
  if (!ArgString(info, 0, &path)) return info.Env().Undefined();
  sockaddr_un sun;
  socklen_t len;
  if (!UnixAddr(path, &sun, &len)) return Errno(info.Env(), ENAMETOOLONG);
  int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return Errno(info.Env(), errno);
  int r;
  do {
    r = connect(fd, reinterpret_cast<sockaddr*>(&sun), len);
  } while (r != 0 && errno == EINTR);
  if (r != 0) {
    int e = errno;
    close(fd);
    return Errno(info.Env(), e);
  }
  return Napi::Number::New(info.Env(), fd);
}

// seqpacketListen(path, backlog) → fd | -errno (used by tests and the CNI stand-in)
Napi::Value SeqpacketListen(const Napi::CallbackInfo& info) {
  std::string path;
  int backlog;
  if (!ArgString(info, 0, &path) || !ArgInt(info, 1, &backlog)) return info.Env().Undefined();
  sockaddr_un sun;
  socklen_t len;
  if (!UnixAddr(path, &sun, &len)) return Errno(info.Env(), ENAMETOOLONG);
  int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return Errno(info.Env(), errno);
  if (bind(fd, reinterpret_cast<sockaddr*>(&sun), len) != 0 || listen(fd, backlog) != 0) {
    int e = errno;
    close(fd);
    return Errno(info.Env(), e);
  }
  return Napi::Number::New(info.Env(), fd);
}

// acceptFd(fd) → fd | -errno (-EAGAIN: nothing pending)
Napi::Value AcceptFd(const Napi::CallbackInfo& info) {
  int fd;
  if (!ArgInt(info, 0, &fd)) return info.Env().Undefined();
  int c;
  do {
    c = accept4(fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
  } while (c < 0 && errno == EINTR);
  if (c < 0) return Errno(info.Env(), errno);
  return Napi::Number::New(info.Env(), c);
}

// sendMessage(fd, data, fds[]) → bytes sent | -errno. One call = one datagram; fds go as
// SCM_RIGHTS. Never blocks (-EAGAIN when the peer's queue is full).
Napi::Value SendMessage(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  if (!ArgInt(info, 0, &fd)) return env.Undefined();
  if (info.Length() < 3 || !info[1].IsTypedArray() || !info[2].IsArray()) {
    Napi::TypeError::New(env, "sendMessage(fd, Uint8Array, number[])").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Uint8Array data = info[1].As<Napi::Uint8Array>();
  Napi::Array fd_list = info[2].As<Napi::Array>();
  std::vector<int> fds;
  for (uint32_t i = 0; i < fd_list.Length(); i++) {
    Napi::Value v = fd_list.Get(i);
    if (!v.IsNumber()) {
      Napi::TypeError::New(env, "fds must be numbers").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    fds.push_back(v.As<Napi::Number>().Int32Value());
  }
  if (fds.size() > static_cast<size_t>(kMaxFds)) return Errno(env, EINVAL);

  iovec iov;
  iov.iov_base = data.Data();
  iov.iov_len = data.ByteLength();
  msghdr msg;
  memset(&msg, 0, sizeof(msg));
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)];
  if (!fds.empty()) {
    memset(control, 0, sizeof(control));
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  }
  ssize_t n;
  do {
    n = sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return Errno(env, errno);
  return Napi::Number::New(env, static_cast<double>(n));
}

// recvMessage(fd, maxBytes) → {data, fds, truncated, ctruncated} | -errno (-EAGAIN: nothing yet).
// Received fds are close-on-exec; the caller owns (and must close) them. End of stream is a
// zero-length message without fds.
Napi::Value RecvMessage(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd, max_bytes;
  if (!ArgInt(info, 0, &fd) || !ArgInt(info, 1, &max_bytes)) return env.Undefined();
  if (max_bytes <= 0 || max_bytes > (1 << 20)) return Errno(env, EINVAL);
  std::vector<char> buf(static_cast<size_t>(max_bytes));
  iovec iov;
  iov.iov_base = buf.data();
  iov.iov_len = buf.size();
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)];
  msghdr msg;
  memset(&msg, 0, sizeof(msg));
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  ssize_t n;
  do {
    n = recvmsg(fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return Errno(env, errno);

  Napi::Array fds = Napi::Array::New(env);
  uint32_t count = 0;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t nfds = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < nfds; i++) {
      int got;
      memcpy(&got, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      fds.Set(count++, Napi::Number::New(env, got));
    }
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("data", Napi::Buffer<char>::Copy(env, buf.data(), static_cast<size_t>(n)));
  o.Set("fds", fds);
  o.Set("truncated", Napi::Boolean::New(env, (msg.msg_flags & MSG_TRUNC) != 0));
  o.Set("ctruncated", Napi::Boolean::New(env, (msg.msg_flags & MSG_CTRUNC) != 0));
  return o;
}

// ---------------------------------------------------------------------------------------------
// FdWatcher: a uv_poll handle on Node's event loop.
//   new FdWatcher(fd, (status, events) => void); start(events) → 0 | -errno; stop(); close()
// events: 1 readable, 2 writable, 4 disconnect (libuv's UV_READABLE/UV_WRITABLE/UV_DISCONNECT).
// After close() the fd may be handed to Node (net.Socket({fd})): uv_poll_stop removes it from
// epoll synchronously. The fd itself is never closed here.
class FdWatcher : public Napi::ObjectWrap<FdWatcher> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "FdWatcher",
                       {InstanceMethod("start", &FdWatcher::Start), InstanceMethod("stop", &FdWatcher::Stop),
                        InstanceMethod("close", &FdWatcher::Close)});
  }

  explicit FdWatcher(const Napi::CallbackInfo& info) : Napi::ObjectWrap<FdWatcher>(info) {
    Napi::Env env = info.Env();
    int fd;
    if (!ArgInt(info, 0, &fd)) return;
    if (info.Length() < 2 || !info[1].IsFunction()) {
      Napi::TypeError::New(env, "argument 1 must be a function").ThrowAsJavaScriptException();
      return;
    }
    callback_ = Napi::Persistent(info[1].As<Napi::Function>());
    context_ = std::make_unique<Napi::AsyncContext>(env, "ztunnelFdWatcher");
    uv_loop_t* loop = nullptr;
    if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr) {
      Napi::Error::New(env, "no event loop").ThrowAsJavaScriptException();
      return;
    }
    handle_ = new uv_poll_t;
    int r = uv_poll_init(loop, handle_, fd);
    if (r != 0) {
      delete handle_;
      handle_ = nullptr;
      ErrnoError(env, -r, "uv_poll_init").ThrowAsJavaScriptException();
      return;
    }
    handle_->data = this;
  }

  ~FdWatcher() override { CloseHandle(); }

 private:
  Napi::Value Start(const Napi::CallbackInfo& info) {
    int events;
    if (!ArgInt(info, 0, &events)) return info.Env().Undefined();
    if (handle_ == nullptr) return Errno(info.Env(), EBADF);
    int r = uv_poll_start(handle_, events, OnPoll);
    if (r != 0) return Napi::Number::New(info.Env(), r);
    if (!active_) {
      active_ = true;
      Ref();  // keep the JS object (and its callback) alive while polling
    }
    return Napi::Number::New(info.Env(), 0);
  }

  Napi::Value Stop(const Napi::CallbackInfo& info) {
    StopPolling();
    return info.Env().Undefined();
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    StopPolling();
    CloseHandle();
    return info.Env().Undefined();
  }

  void StopPolling() {
    if (handle_ != nullptr) uv_poll_stop(handle_);
    if (active_) {
      active_ = false;
      Unref();
    }
  }

  void CloseHandle() {
    if (handle_ == nullptr) return;
    handle_->data = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(handle_),
             [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
    handle_ = nullptr;
  }

  static void OnPoll(uv_poll_t* h, int status, int events) {
    auto* self = static_cast<FdWatcher*>(h->data);
    if (self == nullptr || !self->active_) return;
    Napi::Env env = self->Env();
    Napi::HandleScope scope(env);
    // MakeCallback runs the microtask queue afterwards, as for any libuv-driven callback.
    self->callback_.MakeCallback(self->Value(), {Napi::Number::New(env, status), Napi::Number::New(env, events)},
                                 *self->context_);
    if (env.IsExceptionPending()) {
      Napi::Error e = env.GetAndClearPendingException();
      napi_fatal_exception(env, e.Value());
    }
  }

  uv_poll_t* handle_ = nullptr;
  bool active_ = false;
  Napi::FunctionReference callback_;
  std::unique_ptr<Napi::AsyncContext> context_;
};

// glibc's allocator: malloc_trim(0) returns free heap pages (in every arena) to the kernel;
// mallopt(M_ARENA_MAX, n) caps how many arenas threads spread over. Both are process-wide and
// cheap to call; src/platform/memory.ts decides when.
Napi::Value MallocTrim(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), malloc_trim(0) == 1);
}

Napi::Value MallocArenaMax(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) {
    Napi::TypeError::New(env, "mallocArenaMax(n): n must be a number").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int n = info[0].As<Napi::Number>().Int32Value();
  if (n < 1) return Napi::Number::New(env, -EINVAL);
  return Napi::Number::New(env, mallopt(M_ARENA_MAX, n) == 1 ? 0 : -EINVAL);
}

// V8's "low memory" notification for the isolate of the calling thread (main thread or a worker):
// full collections that compact and shrink the young generation and release V8's pooled pages.
// The only call here that reaches past N-API into V8; the addon is built for the exact Node that
// loads it (scripts/build-native.mjs). src/platform/memory.ts decides when.
Napi::Value LowMemoryNotification(const Napi::CallbackInfo& info) {
  v8::Isolate* isolate = v8::Isolate::GetCurrent();
  if (isolate == nullptr) return Napi::Boolean::New(info.Env(), false);
  isolate->LowMemoryNotification();
  return Napi::Boolean::New(info.Env(), true);
}

// BasicConstraints cA of a DER certificate, as OpenSSL (Node's own, the one that parsed and verified
// the peer's chain in the handshake) reads it: 1 cA TRUE, 0 not (no BasicConstraints, or cA
// FALSE), -1 not a certificate, -2 an extension OpenSSL could not decode (or a repeated one).
// tls/verify.ts's peer-leaf check; lets a data-plane worker do it without a certificate library.
Napi::Value X509BasicConstraintsCa(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsBuffer()) {
    Napi::TypeError::New(env, "x509BasicConstraintsCa(der: Buffer)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Buffer<uint8_t> der = info[0].As<Napi::Buffer<uint8_t>>();
  const unsigned char* p = der.Data();
  X509* cert = d2i_X509(nullptr, &p, static_cast<long>(der.Length()));
  if (cert == nullptr) return Napi::Number::New(env, -1);
  uint32_t flags = X509_get_extension_flags(cert);
  X509_free(cert);
  if (flags & EXFLAG_INVALID) return Napi::Number::New(env, -2);
  return Napi::Number::New(env, (flags & EXFLAG_BCONS) && (flags & EXFLAG_CA) ? 1 : 0);
}

// madvise(2) on [start, start + length) (addresses as BigInt, page aligned by the caller):
// 0 or a negative errno (EINVAL for an advice this kernel does not know).
Napi::Value Madvise(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsBigInt() || !info[1].IsBigInt() || !info[2].IsNumber()) {
    Napi::TypeError::New(env, "madvise(start: bigint, length: bigint, advice: number)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  bool lossless = true;
  uint64_t start = info[0].As<Napi::BigInt>().Uint64Value(&lossless);
  uint64_t length = info[1].As<Napi::BigInt>().Uint64Value(&lossless);
  int advice = info[2].As<Napi::Number>().Int32Value();
  if (!lossless) return Napi::Number::New(env, -EINVAL);
  int r = madvise(reinterpret_cast<void*>(static_cast<uintptr_t>(start)), static_cast<size_t>(length), advice);
  return Napi::Number::New(env, r == 0 ? 0 : -errno);
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  std::call_once(g_self_netns_once, [] {
    g_self_netns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    if (g_self_netns < 0) g_self_netns_errno = errno;
  });
  exports.Set("socketInNetns", Napi::Function::New(env, SocketInNetns, "socketInNetns"));
  exports.Set("socketOwnNetns", Napi::Function::New(env, SocketOwnNetns, "socketOwnNetns"));
  exports.Set("setSockOptInt", Napi::Function::New(env, SetSockOptInt, "setSockOptInt"));
  exports.Set("getSockOptInt", Napi::Function::New(env, GetSockOptInt, "getSockOptInt"));
  exports.Set("setLingerReset", Napi::Function::New(env, SetLingerReset, "setLingerReset"));
  exports.Set("bindAddr", Napi::Function::New(env, BindAddr, "bindAddr"));
  exports.Set("connectAddr", Napi::Function::New(env, ConnectAddr, "connectAddr"));
  exports.Set("originalDst", Napi::Function::New(env, OriginalDst, "originalDst"));
  exports.Set("netnsInode", Napi::Function::New(env, NetnsInode, "netnsInode"));
  exports.Set("closeFd", Napi::Function::New(env, CloseFd, "closeFd"));
  exports.Set("dupFd", Napi::Function::New(env, DupFd, "dupFd"));
  exports.Set("seqpacketConnect", Napi::Function::New(env, SeqpacketConnect, "seqpacketConnect"));
  exports.Set("seqpacketListen", Napi::Function::New(env, SeqpacketListen, "seqpacketListen"));
  exports.Set("acceptFd", Napi::Function::New(env, AcceptFd, "acceptFd"));
  exports.Set("sendMessage", Napi::Function::New(env, SendMessage, "sendMessage"));
  exports.Set("recvMessage", Napi::Function::New(env, RecvMessage, "recvMessage"));
  exports.Set("mallocTrim", Napi::Function::New(env, MallocTrim, "mallocTrim"));
  exports.Set("mallocArenaMax", Napi::Function::New(env, MallocArenaMax, "mallocArenaMax"));
  exports.Set("lowMemoryNotification", Napi::Function::New(env, LowMemoryNotification, "lowMemoryNotification"));
  exports.Set("x509BasicConstraintsCa", Napi::Function::New(env, X509BasicConstraintsCa, "x509BasicConstraintsCa"));
  exports.Set("madvise", Napi::Function::New(env, Madvise, "madvise"));
  exports.Set("FdWatcher", FdWatcher::Init(env));
  return exports;
}

}  // namespace

NODE_API_MODULE(ztunnel_native, Init)
