// Fibers of the SIMT emulator (see fiber.h).
#include "core/simt/fiber.h"

#include <sys/mman.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <new>

// CNNOPS_SIMT_UCONTEXT forces the portable switch (to test it on x86-64).
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(CNNOPS_SIMT_UCONTEXT)
#define CNNOPS_SIMT_ASM_SWITCH 1
#else
#include <ucontext.h>
#endif

#include "core/error.h"

namespace cnnops {
namespace simt {

#ifdef CNNOPS_SIMT_ASM_SWITCH
// cnnops_simt_switch(save, next): push the callee-saved registers, store rsp into *save, load
// next as rsp, pop that context's registers and return into it. A new fiber's stack is laid out
// (Fiber::prepare) so that this "returns" into cnnops_simt_trampoline with the Fiber* in rbx.
asm(R"(
  .text
  .globl cnnops_simt_switch
  .hidden cnnops_simt_switch
  .type cnnops_simt_switch, @function
cnnops_simt_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size cnnops_simt_switch, .-cnnops_simt_switch

  .globl cnnops_simt_trampoline
  .hidden cnnops_simt_trampoline
  .type cnnops_simt_trampoline, @function
cnnops_simt_trampoline:
  movq %rbx, %rdi
  call cnnops_simt_fiber_main
  ud2
  .size cnnops_simt_trampoline, .-cnnops_simt_trampoline
)");
extern "C" void cnnops_simt_switch(void** save, void* next);
extern "C" void cnnops_simt_trampoline();
#else
static thread_local Fiber* t_entering = nullptr;
#endif

void fiber_start();

// Called from the trampoline (assembly): kept and given hidden visibility so that the direct
// call binds inside this module, also under link-time optimisation.
extern "C" __attribute__((used, visibility("hidden"))) void cnnops_simt_fiber_main(Fiber* f);

static size_t page_size() {
  static const size_t p = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  return p;
}

Fiber::Fiber() {
#ifndef CNNOPS_SIMT_ASM_SWITCH
  sp_ = new ucontext_t;
#endif
}

Fiber::Fiber(size_t stack_bytes, void (*entry)(void*), void* arg) : entry_(entry), arg_(arg) {
  const size_t page = page_size();
  map_bytes_ = (stack_bytes + page - 1) / page * page + page;  // + the guard page
  stack_ = mmap(nullptr, map_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (stack_ == MAP_FAILED) throw_alloc_failure(map_bytes_, "a SIMT emulator fiber stack");
  if (mprotect(stack_, page, PROT_NONE) != 0) {
    munmap(stack_, map_bytes_);
    throw_alloc_failure(map_bytes_, "a SIMT emulator fiber stack guard page");
  }
#ifndef CNNOPS_SIMT_ASM_SWITCH
  sp_ = new ucontext_t;
#endif
  prepare();
}

Fiber::~Fiber() {
  if (stack_) munmap(stack_, map_bytes_);
#ifndef CNNOPS_SIMT_ASM_SWITCH
  delete static_cast<ucontext_t*>(sp_);
#endif
}

void Fiber::reset() { prepare(); }

void Fiber::prepare() {
  char* top = static_cast<char*>(stack_) + map_bytes_;  // page aligned, so 16-byte aligned
#ifdef CNNOPS_SIMT_ASM_SWITCH
  // From the saved stack pointer up: r15, r14, r13, r12, rbx (= this), rbp, return address (the
  // trampoline) in the slot 8 below `top`, so the trampoline starts with rsp 16-byte aligned.
  auto* p = reinterpret_cast<uint64_t*>(top);
  *--p = reinterpret_cast<uint64_t>(&cnnops_simt_trampoline);
  *--p = 0;                                   // rbp
  *--p = reinterpret_cast<uint64_t>(this);    // rbx
  for (int i = 0; i < 4; ++i) *--p = 0;       // r12 - r15
  sp_ = p;
#else
  auto* uc = static_cast<ucontext_t*>(sp_);
  getcontext(uc);
  uc->uc_stack.ss_sp = static_cast<char*>(stack_) + page_size();
  uc->uc_stack.ss_size = map_bytes_ - page_size();
  uc->uc_link = nullptr;
  makecontext(uc, fiber_start, 0);
  (void)top;
#endif
}

void Fiber::switch_to(Fiber& to) {
#ifdef CNNOPS_SIMT_ASM_SWITCH
  cnnops_simt_switch(&sp_, to.sp_);
#else
  t_entering = &to;
  swapcontext(static_cast<ucontext_t*>(sp_), static_cast<ucontext_t*>(to.sp_));
#endif
}

void Fiber::resume_from(Fiber& from) { from.switch_to(*this); }

Fiber& Fiber::thread_fiber() {
  static thread_local Fiber self;
  return self;
}

extern "C" __attribute__((used, visibility("hidden"))) void cnnops_simt_fiber_main(Fiber* f) {
  f->run_entry();
  std::abort();  // an entry switches away for good instead of returning
}

void fiber_start() {
#ifndef CNNOPS_SIMT_ASM_SWITCH
  cnnops_simt_fiber_main(t_entering);
#endif
}

namespace {
struct PingPong {
  Fiber* fiber;
  long rounds;
};
void ping_pong(void* arg) {
  auto* pp = static_cast<PingPong*>(arg);
  for (;;) pp->fiber->switch_to(Fiber::thread_fiber());
}
}  // namespace

double measure_switch_ns(int rounds) {
  PingPong pp{nullptr, rounds};
  Fiber f(64 * 1024, ping_pong, &pp);
  pp.fiber = &f;
  f.resume_from(Fiber::thread_fiber());  // first entry
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < rounds; ++i) f.resume_from(Fiber::thread_fiber());
  const auto t1 = std::chrono::steady_clock::now();
  return std::chrono::duration<double, std::nano>(t1 - t0).count() / (2.0 * rounds);
}

}  // namespace simt
}  // namespace cnnops
