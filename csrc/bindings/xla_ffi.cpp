// XLA FFI handlers: the core entry points as typed XLA custom calls, so that a jitted JAX program
// runs cnnops kernels on XLA's own buffers with no Python callback in between (python/cnnops/jax.py
// registers them with jax.ffi). Compiled only when jaxlib's FFI headers are found at configure time
// (CMakeLists.txt, CNNOPS_XLA_FFI); otherwise cnnops.jax falls back to jax.pure_callback.
//
// Each handler mirrors the pybind11 function of the same name (csrc/bindings/<family>.cpp): the
// array arguments in that function's order and every other argument as an XLA attribute of the
// same name, so that cnnops.jax describes a call once and runs it through either bridge. Lists are
// int64/float64 arrays (an absent attribute is an empty list), flags are int64 0/1.
//
// Under jax.vmap, calls whose batch axes can join the op's own batch come with a "fold_ranks"
// attribute (the rank each array and result has for the op): leading axes beyond it are merged
// into the first, so one call covers the whole vmapped batch.
//
// Arguments are read in place (XLA's CPU buffers are dense and row-major). Results go straight
// into XLA's result buffers: the op's output allocations take them through an OutputScope (see
// core/tensor.h); a result that still landed elsewhere is copied over once. Errors come back as
// XLA errors whose message starts with the Python exception the bindings would have raised.
#include <atomic>
#include <cstring>
#include <functional>
#include <new>
#include <string>
#include <utility>
#include <vector>

#include "bindings/common.h"
#include "bindings/params.h"
#include "ops/boxes.h"
#include "ops/conv.h"
#include "ops/conv_transpose.h"
#include "ops/pool.h"
#include "ops/unpool.h"
#include "xla/ffi/api/ffi.h"

namespace cnnops {
namespace {

namespace ffi = xla::ffi;

DType dtype_from_xla(ffi::DataType t, const std::string& op, const char* name) {
  switch (t) {
    case ffi::DataType::F32: return DType::Float32;
    case ffi::DataType::F64: return DType::Float64;
    case ffi::DataType::F16: return DType::Float16;
    case ffi::DataType::BF16: return DType::BFloat16;
    case ffi::DataType::S64: return DType::Int64;
    case ffi::DataType::S32: return DType::Int32;
    case ffi::DataType::U8: return DType::UInt8;
    case ffi::DataType::PRED: return DType::Bool;
    default:
      throw TypeError(str(op, ": expected ", name,
                          " as float32, float64, float16, bfloat16 or an integer type, got XLA element type ",
                          static_cast<int>(t)));
  }
}

// One custom call as the handlers see it: the arrays, the results and the attributes.
class Call {
 public:
  Call(ffi::RemainingArgs args, ffi::RemainingRets rets, ffi::Dictionary attrs)
      : args_(args), rets_(rets), attrs_(attrs) {
    op_ = attrs_.contains("op") ? str_attr("op") : std::string("cnnops.jax");
    fold_ = ints_attr("fold_ranks");
  }

  const char* op() const { return op_.c_str(); }
  size_t num_args() const { return args_.size(); }
  size_t num_rets() const { return rets_.size(); }

  // Argument i as a read-only CPU tensor over XLA's buffer.
  Tensor arg(size_t i, const char* name) const {
    auto b = args_.get<ffi::AnyBuffer>(i);
    if (!b.has_value()) throw ValueError(str(op_, ": XLA call has no array argument ", i, " (", name, ")"));
    return view(b.value().untyped_data(), b.value().element_type(), b.value().dimensions(), name, true, fold_rank(i));
  }

  // Result i as a destination for the op's output allocation.
  OutputDestination destination(size_t i) const {
    auto r = rets_.get<ffi::AnyBuffer>(i);
    if (!r.has_value()) throw ValueError(str(op_, ": XLA call has no result ", i));
    ffi::AnyBuffer b = *r.value();
    const Tensor t =
        view(b.untyped_data(), b.element_type(), b.dimensions(), "a result", false, fold_rank(args_.size() + i));
    OutputDestination d;
    d.data = t.data;
    d.dtype = t.dtype;
    d.shape = t.shape;
    return d;
  }

  int64_t int_attr(const char* name) const { return required<int64_t>(name, "an int64 scalar"); }
  bool flag_attr(const char* name) const { return int_attr(name) != 0; }
  double float_attr(const char* name) const { return required<double>(name, "a float64 scalar"); }
  std::string str_attr(const char* name) const { return std::string(required<std::string_view>(name, "a string")); }
  VecI ints_attr(const char* name) const {
    if (!attrs_.contains(name)) return {};
    const auto s = required<ffi::Span<const int64_t>>(name, "an int64 array");
    return VecI(s.begin(), s.end());
  }
  VecD floats_attr(const char* name) const {
    if (!attrs_.contains(name)) return {};
    const auto s = required<ffi::Span<const double>>(name, "a float64 array");
    return VecD(s.begin(), s.end());
  }

 private:
  template <typename T>
  T required(const char* name, const char* what) const {
    auto v = attrs_.get<T>(name);
    if (!v.has_value()) throw ValueError(str(op_, ": XLA call attribute '", name, "' missing or not ", what));
    return v.value();
  }

  // The rank array `i` is folded to (0: as it comes), from "fold_ranks".
  int64_t fold_rank(size_t i) const { return i < fold_.size() ? fold_[i] : 0; }

  // A buffer as a tensor; with fold_rank > 0, leading dimensions beyond that rank (batch axes
  // jax.vmap put in front) are merged into the first one.
  Tensor view(void* data, ffi::DataType et, ffi::Span<const int64_t> dims, const char* name, bool readonly,
              int64_t fold_rank) const {
    Tensor t;
    t.data = data;
    t.dtype = dtype_from_xla(et, op_, name);
    t.shape.assign(dims.begin(), dims.end());
    const auto extra = static_cast<int64_t>(t.shape.size()) - fold_rank;
    if (fold_rank > 0 && extra > 0) {
      int64_t lead = 1;
      for (int64_t d = 0; d <= extra; ++d) lead *= t.shape[d];
      t.shape.erase(t.shape.begin(), t.shape.begin() + extra);
      t.shape[0] = lead;
    }
    t.strides = contiguous_strides(t.shape);
    t.readonly = readonly;
    return t;
  }

  ffi::RemainingArgs args_;
  ffi::RemainingRets rets_;
  ffi::Dictionary attrs_;
  std::string op_;
  VecI fold_;
};

// Results delivered by a copy rather than written in place (tests and diagnostics).
std::atomic<int64_t> g_copied_results{0};

// How run() offers XLA's result buffers to the op (tests of the copy fallback, which the kernels
// never need: they allocate their outputs first, in result order): 0 = in result order, 1 = not
// at all (every result is copied), 2 = in reverse order (results of equal shape land in each
// other's buffers and are set aside before the copies).
std::atomic<int> g_offer_mode{0};

bool overlaps(const Tensor& t, const OutputDestination& d) {
  const size_t tb = static_cast<size_t>(t.numel()) * dtype_size(t.dtype);
  size_t db = dtype_size(d.dtype);
  for (int64_t s : d.shape) db *= static_cast<size_t>(s);
  const auto* a = static_cast<const char*>(t.data);
  const auto* b = static_cast<const char*>(d.data);
  return tb && db && a < b + db && b < a + tb;
}

// Puts each result into its destination. A result that sits in another result's destination is
// set aside first, so that no copy overwrites a result not yet delivered.
void deliver(std::vector<Tensor> results, const std::vector<OutputDestination>& dests, const char* op) {
  if (results.size() != dests.size())
    throw ValueError(str(op, ": XLA call expects ", dests.size(), " results, the op gives ", results.size()));
  for (size_t i = 0; i < results.size(); ++i) {
    if (results[i].dtype != dests[i].dtype || results[i].shape != dests[i].shape)
      throw ValueError(str(op, ": result ", i, " has dtype ", dtype_name(results[i].dtype), " and ", results[i].ndim(),
                           " dimensions, the XLA call declared ", dtype_name(dests[i].dtype), " and ",
                           dests[i].shape.size()));
  }
  for (size_t i = 0; i < results.size(); ++i) {
    if (results[i].data == dests[i].data && results[i].is_contiguous()) continue;
    bool aliased = !results[i].is_contiguous();
    for (size_t j = 0; j < dests.size() && !aliased; ++j) aliased = overlaps(results[i], dests[j]);
    if (aliased) {
      Tensor own = empty(results[i].shape, results[i].dtype, Device{});
      Tensor src = contiguous(results[i]);
      if (own.numel()) std::memcpy(own.data, src.data, static_cast<size_t>(own.numel()) * dtype_size(own.dtype));
      results[i] = std::move(own);
    }
  }
  for (size_t i = 0; i < results.size(); ++i) {
    if (results[i].data == dests[i].data) continue;
    const size_t bytes = static_cast<size_t>(results[i].numel()) * dtype_size(results[i].dtype);
    if (bytes) std::memcpy(dests[i].data, results[i].data, bytes);
    g_copied_results.fetch_add(1, std::memory_order_relaxed);
  }
}

ffi::Error failure(const char* kind, ffi::ErrorCode code, const std::string& op, const char* what) {
  std::string msg = what;
  if (msg.rfind(op, 0) != 0 && !op.empty()) msg = op + ": " + msg;
  return ffi::Error(code, std::string(kind) + ": " + msg);
}

// Runs `body` (Call -> the op's results, in the call's result order) with the results' buffers
// offered to its output allocations, then delivers. No exception leaves: XLA gets an error.
ffi::Error run(ffi::RemainingArgs args, ffi::RemainingRets rets, ffi::Dictionary attrs,
               const std::function<std::vector<Tensor>(const Call&)>& body) {
  std::string op = "cnnops.jax";
  try {
    const Call call(args, rets, attrs);
    op = call.op();
    set_current_op(call.op());
    std::vector<OutputDestination> dests;
    for (size_t i = 0; i < call.num_rets(); ++i) dests.push_back(call.destination(i));
    const int mode = g_offer_mode.load(std::memory_order_relaxed);
    std::vector<OutputDestination> offered;  // modes 1 and 2
    if (mode == 2) offered.assign(dests.rbegin(), dests.rend());
    std::vector<Tensor> results;
    {
      const OutputScope scope(mode == 0 ? &dests : &offered);
      results = body(call);
    }
    deliver(std::move(results), dests, call.op());
    return ffi::Error::Success();
  } catch (const ValueError& e) {
    return failure("ValueError", ffi::ErrorCode::kInvalidArgument, op, e.what());
  } catch (const TypeError& e) {
    return failure("TypeError", ffi::ErrorCode::kInvalidArgument, op, e.what());
  } catch (const NotImplemented& e) {
    return failure("NotImplementedError", ffi::ErrorCode::kUnimplemented, op, e.what());
  } catch (const MemoryError& e) {
    return failure("MemoryError", ffi::ErrorCode::kResourceExhausted, op, e.what());
  } catch (const std::bad_alloc&) {
    return failure("MemoryError", ffi::ErrorCode::kResourceExhausted, op, "out of memory");
  } catch (const std::exception& e) {
    return failure("RuntimeError", ffi::ErrorCode::kInternal, op, e.what());
  }
}

std::array<bool, 3> needs_attr(const Call& c) {
  const VecI v = c.ints_attr("needs");
  if (v.size() != 3) throw ValueError(str(c.op(), ": expected 3 'needs' flags, got ", v.size()));
  return {v[0] != 0, v[1] != 0, v[2] != 0};
}

std::vector<Tensor> needed(const ConvGrads& g) {
  std::vector<Tensor> out;
  if (g.has_input) out.push_back(g.grad_input);
  if (g.has_weight) out.push_back(g.grad_weight);
  if (g.has_bias) out.push_back(g.grad_bias);
  return out;
}

ConvParams conv_attrs(const Call& c, const std::string& padding_mode) {
  return conv_params(static_cast<int>(c.int_attr("nd")), c.ints_attr("stride"), c.ints_attr("pad"),
                     c.ints_attr("dilation"), c.int_attr("groups"), padding_mode, c.str_attr("algo"),
                     c.str_attr("precision"), c.op());
}

PoolParams pool_attrs(const Call& c) {
  return pool_params(c.op(), c.str_attr("kind"), static_cast<int>(c.int_attr("nd")), c.flag_attr("channels_last"),
                     c.ints_attr("kernel"), c.ints_attr("stride"), c.ints_attr("pad"), c.ints_attr("dilation"),
                     c.flag_attr("ceil_mode"), c.flag_attr("count_include_pad"), c.int_attr("divisor_override"),
                     c.float_attr("norm_type"), c.ints_attr("output_size"));
}

// Optional array argument `i`: absent when the call has fewer arguments.
const Tensor* optional_arg(const Call& c, size_t i, const char* name, Tensor& slot) {
  if (c.num_args() <= i) return nullptr;
  slot = c.arg(i, name);
  return &slot;
}

#define CNNOPS_FFI_BINDING ffi::Ffi::Bind().RemainingArgs().RemainingRets().Attrs<ffi::Dictionary>()

ffi::Error conv_impl(ffi::RemainingArgs a, ffi::RemainingRets r, ffi::Dictionary d) {
  return run(a, r, d, [](const Call& c) {
    Tensor bias;
    const Tensor* b = optional_arg(c, 2, "bias", bias);
    return std::vector<Tensor>{
        conv(c.op(), c.arg(0, "input"), c.arg(1, "weight"), b, conv_attrs(c, c.str_attr("padding_mode")))};
  });
}

ffi::Error conv_backward_impl(ffi::RemainingArgs a, ffi::RemainingRets r, ffi::Dictionary d) {
  return run(a, r, d, [](const Call& c) {
    const auto n = needs_attr(c);
    return needed(conv_backward(c.op(), c.arg(0, "grad_output"), c.arg(1, "input"), c.arg(2, "weight"),
                                conv_attrs(c, c.str_attr("padding_mode")), n[0], n[1], n[2]));
  });
}

ffi::Error conv_transpose_impl(ffi::RemainingArgs a, ffi::RemainingRets r, ffi::Dictionary d) {
  return run(a, r, d, [](const Call& c) {
    Tensor bias;
    const Tensor* b = optional_arg(c, 2, "bias", bias);
    return std::vector<Tensor>{conv_transpose(c.op(), c.arg(0, "input"), c.arg(1, "weight"), b, conv_attrs(c, "zeros"),
                                              c.ints_attr("out_spatial"))};
  });
}

ffi::Error conv_transpose_backward_impl(ffi::RemainingArgs a, ffi::RemainingRets r, ffi::Dictionary d) {
  return run(a, r, d, [](const Call& c) {
    const auto n = needs_attr(c);
    return needed(conv_transpose_backward(c.op(), c.arg(0, "grad_output"), c.arg(1, "input"), c.arg(2, "weight"),
                                          conv_attrs(c, "zeros"), n[0], n[1], n[2]));
  });
}

ffi::Error pool_impl(ffi::RemainingArgs a, ffi::RemainingRets r, ffi::Dictionary d) {
  return run(a, r, d, [](const Call& c) {
    PoolParams p = pool_attrs(c);
    p.return_indices = c.flag_attr("return_indices");
    p.tf_indices = c.flag_attr("tf_indices");
    PoolResult res = pool(c.op(), c.arg(0, "input"), p);
    std::vector<Tensor> out{std::move(res.output)};
    if (res.has_indices) out.push_back(std::move(res.indices));
    return out;
  });
}

ffi::Error pool_backward_impl(ffi::RemainingArgs a, ffi::RemainingRets r, ffi::Dictionary d) {
  return run(a, r, d, [](const Call& c) {
    Tensor indices;
    const Tensor* ix = optional_arg(c, 2, "indices", indices);
    return std::vector<Tensor>{pool_backward(c.op(), c.arg(0, "grad_output"), c.arg(1, "input"), ix, pool_attrs(c))};
  });
}

ffi::Error upsample_nearest_impl(ffi::RemainingArgs a, ffi::RemainingRets r, ffi::Dictionary d) {
  return run(a, r, d, [](const Call& c) {
    return std::vector<Tensor>{upsample_nearest(c.op(), c.arg(0, "input"), static_cast<int>(c.int_attr("nd")),
                                                c.flag_attr("channels_last"), c.ints_attr("out_size"),
                                                c.floats_attr("scales"), c.flag_attr("exact"))};
  });
}

ffi::Error upsample_nearest_backward_impl(ffi::RemainingArgs a, ffi::RemainingRets r, ffi::Dictionary d) {
  return run(a, r, d, [](const Call& c) {
    return std::vector<Tensor>{upsample_nearest_backward(
        c.op(), c.arg(0, "grad_output"), static_cast<int>(c.int_attr("nd")), c.flag_attr("channels_last"),
        c.ints_attr("in_size"), c.floats_attr("scales"), c.flag_attr("exact"))};
  });
}

ffi::Error box_loss_impl(ffi::RemainingArgs a, ffi::RemainingRets r, ffi::Dictionary d) {
  return run(a, r, d, [](const Call& c) {
    return std::vector<Tensor>{box_loss(c.op(), parse_iou_kind(c.str_attr("kind"), c.op()), c.arg(0, "boxes1"),
                                        c.arg(1, "boxes2"), parse_reduction(c.str_attr("reduction"), c.op()),
                                        c.float_attr("eps"), c.float_attr("offset"), c.flag_attr("canonicalize"))};
  });
}

ffi::Error box_loss_backward_impl(ffi::RemainingArgs a, ffi::RemainingRets r, ffi::Dictionary d) {
  return run(a, r, d, [](const Call& c) {
    auto g = box_loss_backward(c.op(), parse_iou_kind(c.str_attr("kind"), c.op()), c.arg(0, "grad_output"),
                               c.arg(1, "boxes1"), c.arg(2, "boxes2"), parse_reduction(c.str_attr("reduction"), c.op()),
                               c.float_attr("eps"), c.float_attr("offset"), c.flag_attr("canonicalize"));
    return std::vector<Tensor>{std::move(g.first), std::move(g.second)};
  });
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(cnnops_xla_conv, conv_impl, CNNOPS_FFI_BINDING);
XLA_FFI_DEFINE_HANDLER_SYMBOL(cnnops_xla_conv_backward, conv_backward_impl, CNNOPS_FFI_BINDING);
XLA_FFI_DEFINE_HANDLER_SYMBOL(cnnops_xla_conv_transpose, conv_transpose_impl, CNNOPS_FFI_BINDING);
XLA_FFI_DEFINE_HANDLER_SYMBOL(cnnops_xla_conv_transpose_backward, conv_transpose_backward_impl, CNNOPS_FFI_BINDING);
XLA_FFI_DEFINE_HANDLER_SYMBOL(cnnops_xla_pool, pool_impl, CNNOPS_FFI_BINDING);
XLA_FFI_DEFINE_HANDLER_SYMBOL(cnnops_xla_pool_backward, pool_backward_impl, CNNOPS_FFI_BINDING);
XLA_FFI_DEFINE_HANDLER_SYMBOL(cnnops_xla_upsample_nearest, upsample_nearest_impl, CNNOPS_FFI_BINDING);
XLA_FFI_DEFINE_HANDLER_SYMBOL(cnnops_xla_upsample_nearest_backward, upsample_nearest_backward_impl, CNNOPS_FFI_BINDING);
XLA_FFI_DEFINE_HANDLER_SYMBOL(cnnops_xla_box_loss, box_loss_impl, CNNOPS_FFI_BINDING);
XLA_FFI_DEFINE_HANDLER_SYMBOL(cnnops_xla_box_loss_backward, box_loss_backward_impl, CNNOPS_FFI_BINDING);

// _C.xla_ffi_targets: {core function name: PyCapsule of its handler}, for jax.ffi.register_ffi_target.
void bind_xla_ffi(py::module_& m) {
  py::dict targets;
  const auto add = [&](const char* name, XLA_FFI_Error* (*fn)(XLA_FFI_CallFrame*)) {
    targets[name] = py::capsule(reinterpret_cast<void*>(fn));
  };
  add("conv", cnnops_xla_conv);
  add("conv_backward", cnnops_xla_conv_backward);
  add("conv_transpose", cnnops_xla_conv_transpose);
  add("conv_transpose_backward", cnnops_xla_conv_transpose_backward);
  add("pool", cnnops_xla_pool);
  add("pool_backward", cnnops_xla_pool_backward);
  add("upsample_nearest", cnnops_xla_upsample_nearest);
  add("upsample_nearest_backward", cnnops_xla_upsample_nearest_backward);
  add("box_loss", cnnops_xla_box_loss);
  add("box_loss_backward", cnnops_xla_box_loss_backward);
  m.attr("xla_ffi_targets") = targets;
  m.def(
      "xla_ffi_copied_results", [] { return g_copied_results.load(std::memory_order_relaxed); },
      "How many results of XLA FFI calls were copied into XLA's buffers instead of written in place.");
  m.def(
      "_xla_ffi_set_offer_mode",
      [](int mode) {
        if (mode < 0 || mode > 2)
          throw ValueError(str("_xla_ffi_set_offer_mode: expected 0 (in order), 1 (none) or 2 (reversed), got ", mode));
        return g_offer_mode.exchange(mode);
      },
      py::arg("mode"),
      "Tests only: how XLA's result buffers are offered to the ops (0 in result order, 1 not at all, 2 "
      "reversed), to exercise the copy fallback. Returns the previous mode.");
  m.attr("xla_ffi_api_version") = py::make_tuple(XLA_FFI_API_MAJOR, XLA_FFI_API_MINOR);
}

}  // namespace cnnops
