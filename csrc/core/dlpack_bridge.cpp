#include "core/dlpack_bridge.h"

#include <pybind11/stl.h>

#include <cstring>

#include "core/cuda.h"
#include "core/dlpack.h"
#include "core/error.h"

namespace py = pybind11;

namespace cnnops {

static DType dtype_from_dl(DLDataType t, const char* op, const char* argname) {
  if (t.lanes == 1) {
    if (t.code == kDLFloat && t.bits == 32) return DType::Float32;
    if (t.code == kDLFloat && t.bits == 64) return DType::Float64;
    if (t.code == kDLFloat && t.bits == 16) return DType::Float16;
    if (t.code == kDLBfloat && t.bits == 16) return DType::BFloat16;
    if (t.code == kDLInt && t.bits == 64) return DType::Int64;
    if (t.code == kDLInt && t.bits == 32) return DType::Int32;
    if (t.code == kDLUInt && t.bits == 8) return DType::UInt8;
    if (t.code == kDLBool && t.bits == 8) return DType::Bool;
  }
  const char* kind = t.code == kDLInt       ? "int"
                     : t.code == kDLUInt    ? "uint"
                     : t.code == kDLBool    ? "bool"
                     : t.code == kDLComplex ? "complex"
                     : t.code == kDLFloat   ? "float"
                                            : "dtype code ";
  throw TypeError(str(op, ": expected `", argname,
                      "` with a supported dtype (float32, float64, int64, int32, uint8 or bool), got ", kind,
                      (t.code == kDLBool ? "" : std::to_string(t.bits)), (t.lanes != 1 ? " (vector lanes)" : "")));
}

static DLDataType dtype_to_dl(DType t) {
  switch (t) {
    case DType::Float32: return {kDLFloat, 32, 1};
    case DType::Float64: return {kDLFloat, 64, 1};
    case DType::Float16: return {kDLFloat, 16, 1};
    case DType::BFloat16: return {kDLBfloat, 16, 1};
    case DType::Int64: return {kDLInt, 64, 1};
    case DType::Int32: return {kDLInt, 32, 1};
    case DType::UInt8: return {kDLUInt, 8, 1};
    case DType::Bool: return {kDLBool, 8, 1};
  }
  return {kDLFloat, 32, 1};
}

static Tensor view_of(const DLTensor& dl, std::shared_ptr<void> owner, const char* op, const char* argname) {
  Tensor t;
  t.dtype = dtype_from_dl(dl.dtype, op, argname);
  switch (dl.device.device_type) {
    case kDLCPU:
    case kDLCUDAHost: t.device = {DeviceType::CPU, 0}; break;
    case kDLCUDA:
    case kDLCUDAManaged: {
      const int n = cuda::device_count();
      if (!cuda::compiled())
        throw NotImplemented(str(op, ": `", argname, "` is a CUDA array but cnnops was built without CUDA support"));
      CNNOPS_CHECK_VALUE(dl.device.device_id >= 0 && dl.device.device_id < n, op, ": `", argname,
                         "` is on CUDA device ", dl.device.device_id, " but ", n, " device(s) are available");
      t.device = {DeviceType::CUDA, dl.device.device_id};
      break;
    }
    default:
      throw TypeError(str(op, ": expected `", argname, "` on the CPU or a CUDA device, got DLPack device type ",
                          dl.device.device_type));
  }
  t.shape.assign(dl.shape, dl.shape + dl.ndim);
  if (dl.strides && dl.ndim > 0) t.strides.assign(dl.strides, dl.strides + dl.ndim);
  else t.strides = contiguous_strides(t.shape);
  t.data = static_cast<char*>(dl.data) + dl.byte_offset;
  t.owner = std::move(owner);
  return t;
}

Tensor from_python(py::handle obj, const char* op, const char* argname) {
  set_current_op(op);
  if (!py::hasattr(obj, "__dlpack__")) {
    std::string tname = py::str(py::type::handle_of(obj).attr("__name__"));
    throw TypeError(str(op, ": expected `", argname,
                        "` to be an array supporting DLPack (NumPy, PyTorch, CuPy, JAX), got ", tname));
  }
  // A CUDA producer makes its data ready on the stream our kernels will use (DLPack's stream
  // argument: 1 is the legacy default stream, any other value a cudaStream_t).
  py::object stream_arg = py::none();
  static PyObject* ndarray_type = py::object(py::module_::import("numpy").attr("ndarray")).release().ptr();
  if (Py_TYPE(obj.ptr()) != reinterpret_cast<PyTypeObject*>(ndarray_type) && py::hasattr(obj, "__dlpack_device__")) {
    py::object dev = obj.attr("__dlpack_device__")();
    if (py::isinstance<py::tuple>(dev) && py::len(dev) >= 1 && py::cast<int>(dev[py::int_(0)]) == kDLCUDA) {
      const cuda::Stream s = cuda::current_stream();
      stream_arg = py::int_(s == 0 ? std::uintptr_t(1) : s);
    }
  }
  py::object cap;
  // An exporter that cannot describe its array (NumPy's object, string or structured dtypes)
  // raises BufferError: that is a wrong argument of this op.
  auto refused = [&](py::error_already_set& e) {
    std::string dt = py::hasattr(obj, "dtype") ? std::string(py::str(obj.attr("dtype"))) : std::string("?");
    return TypeError(str(op, ": expected `", argname, "` with a numeric dtype, got an array of dtype ", dt,
                         " that cannot be exported through DLPack (", e.what(), ")"));
  };
  try {
    if (stream_arg.is_none()) cap = obj.attr("__dlpack__")(py::arg("max_version") = py::make_tuple(1, 0));
    else cap = obj.attr("__dlpack__")(py::arg("stream") = stream_arg, py::arg("max_version") = py::make_tuple(1, 0));
  } catch (py::error_already_set& e) {
    if (e.matches(PyExc_BufferError)) throw refused(e);
    if (!e.matches(PyExc_TypeError)) throw;
    try {
      if (stream_arg.is_none()) cap = obj.attr("__dlpack__")();
      else cap = obj.attr("__dlpack__")(py::arg("stream") = stream_arg);
    } catch (py::error_already_set& e2) {
      if (e2.matches(PyExc_BufferError)) throw refused(e2);
      throw;
    }
  }
  PyObject* c = cap.ptr();
  if (PyCapsule_IsValid(c, "dltensor_versioned")) {
    auto* mt = static_cast<DLManagedTensorVersioned*>(PyCapsule_GetPointer(c, "dltensor_versioned"));
    PyCapsule_SetName(c, "used_dltensor_versioned");
    std::shared_ptr<void> owner(mt, [](void* p) {
      auto* m = static_cast<DLManagedTensorVersioned*>(p);
      if (m->deleter) m->deleter(m);
    });
    if (mt->version.major > 1)
      throw TypeError(str(op, ": `", argname, "` uses DLPack ", mt->version.major, ".", mt->version.minor,
                          ", newer than the 1.x this build understands"));
    Tensor t = view_of(mt->dl_tensor, owner, op, argname);
    t.readonly = (mt->flags & kDLPackFlagReadOnly) != 0;
    return t;
  }
  if (PyCapsule_IsValid(c, "dltensor")) {
    auto* mt = static_cast<DLManagedTensor*>(PyCapsule_GetPointer(c, "dltensor"));
    PyCapsule_SetName(c, "used_dltensor");
    std::shared_ptr<void> owner(mt, [](void* p) {
      auto* m = static_cast<DLManagedTensor*>(p);
      if (m->deleter) m->deleter(m);
    });
    return view_of(mt->dl_tensor, owner, op, argname);
  }
  throw TypeError(str(op, ": `", argname, "`.__dlpack__() did not return a DLPack capsule"));
}

// ---- export ----

namespace {
// A consumer on another CUDA stream may still be reading the memory when it releases the tensor;
// the block would return to the producer stream's free list and could be reused there at once.
// So on release the producer stream is made to wait for everything queued on the consumer's
// stream so far (what PyTorch calls record_stream).
struct ExportCtx {
  Tensor t;
  std::vector<int64_t> shape, strides;
  bool cross_stream = false;
  cuda::Stream producer = 0, consumer = 0;
  ~ExportCtx() {
    if (!cross_stream) return;
    try {
      cuda::rt::stream_wait(producer, consumer, t.device.index, "Array release");
    } catch (...) {  // a deleter must not throw; the driver may already be shut down at exit
    }
  }
};

template <typename Managed>
void fill(Managed* m, ExportCtx* ctx) {
  const Tensor& t = ctx->t;
  DLTensor& dl = m->dl_tensor;
  dl.data = t.data;
  dl.device.device_type = t.device.type == DeviceType::CPU ? kDLCPU : kDLCUDA;
  dl.device.device_id = t.device.type == DeviceType::CPU ? 0 : t.device.index;
  dl.ndim = static_cast<int32_t>(t.shape.size());
  dl.dtype = dtype_to_dl(t.dtype);
  ctx->shape = t.shape;
  ctx->strides = t.strides;
  dl.shape = ctx->shape.data();
  dl.strides = ctx->strides.data();
  dl.byte_offset = 0;
  m->manager_ctx = ctx;
}

void delete_legacy(DLManagedTensor* m) {
  delete static_cast<ExportCtx*>(m->manager_ctx);
  delete m;
}
void delete_versioned(DLManagedTensorVersioned* m) {
  delete static_cast<ExportCtx*>(m->manager_ctx);
  delete m;
}

// A capsule nobody consumed still owns its tensor.
void capsule_legacy_dtor(PyObject* c) {
  if (PyCapsule_IsValid(c, "dltensor")) {
    auto* m = static_cast<DLManagedTensor*>(PyCapsule_GetPointer(c, "dltensor"));
    if (m && m->deleter) m->deleter(m);
  } else {
    PyErr_Clear();
  }
}
void capsule_versioned_dtor(PyObject* c) {
  if (PyCapsule_IsValid(c, "dltensor_versioned")) {
    auto* m = static_cast<DLManagedTensorVersioned*>(PyCapsule_GetPointer(c, "dltensor_versioned"));
    if (m && m->deleter) m->deleter(m);
  } else {
    PyErr_Clear();
  }
}
}  // namespace

static py::object export_capsule(const Array& a, py::object max_version, bool cross_stream, cuda::Stream consumer) {
  bool versioned = false;
  if (!max_version.is_none()) {
    auto mv = max_version.cast<std::pair<int, int>>();
    versioned = mv.first >= 1;
  }
  auto* ctx = new ExportCtx{a.t, {}, {}, cross_stream, a.stream, consumer};
  if (versioned) {
    auto* m = new DLManagedTensorVersioned{};
    m->version = {1, 0};
    m->flags = 0;
    fill(m, ctx);
    m->deleter = delete_versioned;
    PyObject* c = PyCapsule_New(m, "dltensor_versioned", capsule_versioned_dtor);
    if (!c) {
      delete_versioned(m);
      throw py::error_already_set();
    }
    return py::reinterpret_steal<py::object>(c);
  }
  auto* m = new DLManagedTensor{};
  fill(m, ctx);
  m->deleter = delete_legacy;
  PyObject* c = PyCapsule_New(m, "dltensor", capsule_legacy_dtor);
  if (!c) {
    delete_legacy(m);
    throw py::error_already_set();
  }
  return py::reinterpret_steal<py::object>(c);
}

// The stream a DLPack consumer named (None: the legacy default stream; 1 the legacy default,
// 2 the per-thread default, -1 "no synchronisation", anything else a cudaStream_t).
static bool consumer_stream(py::object stream, cuda::Stream* out) {
  if (stream.is_none()) {
    *out = 0;
    return true;
  }
  const long long v = stream.cast<long long>();
  if (v == -1) return false;
  *out = v == 1 ? cuda::Stream(0) : static_cast<cuda::Stream>(v);
  return true;
}

// A contiguous copy of `a` on the host (the array itself when it is already there).
static Array to_host(const Array& a) {
  if (a.t.device.type == DeviceType::CPU) return a;
  set_current_op("Array.to");
  Tensor src = a.t;
  {
    py::gil_scoped_release nogil;
    const cuda::Stream prev = cuda::current_stream();
    cuda::set_current_stream(a.stream);
    try {
      src = contiguous(a.t);
      Tensor h = empty(src.shape, src.dtype, Device{});
      cuda::copy_to_host(h.data, src.data, static_cast<size_t>(src.numel()) * dtype_size(src.dtype), a.stream,
                         "Array.to");
      src = std::move(h);
    } catch (...) {
      cuda::set_current_stream(prev);
      throw;
    }
    cuda::set_current_stream(prev);
  }
  return Array{std::move(src), 0};
}

// `t` copied to CUDA device `index` on the current stream (a view when it is there already).
Array to_cuda(const Tensor& t, int index, const char* op) {
  cuda::set_device(index, op);
  if (t.device.type == DeviceType::CUDA && t.device.index == index) return Array{t, cuda::current_stream()};
  Tensor src = t;
  if (src.device.type == DeviceType::CUDA) src = to_host(Array{t, cuda::current_stream()}).t;
  py::gil_scoped_release nogil;
  src = contiguous(src);
  Tensor d = empty(src.shape, src.dtype, Device{DeviceType::CUDA, index});
  cuda::copy_to_device(d.data, src.data, static_cast<size_t>(src.numel()) * dtype_size(src.dtype),
                       cuda::current_stream(), op);
  // the host source must outlive an asynchronous copy
  cuda::rt::stream_synchronize(cuda::current_stream(), op);
  return Array{std::move(d), cuda::current_stream()};
}

static py::object as_numpy(const Array& a) {
  return py::module_::import("numpy").attr("from_dlpack")(py::cast(to_host(a)));
}

// "cpu", "cuda", "cuda:1" -> (is_cuda, index)
static std::pair<bool, int> parse_device(py::object device, const char* op) {
  if (py::isinstance<py::int_>(device)) return {true, device.cast<int>()};
  const std::string d = py::str(device);
  if (d == "cpu") return {false, 0};
  if (d == "cuda") return {true, 0};
  if (d.rfind("cuda:", 0) == 0) {
    try {
      size_t used = 0;
      const int i = std::stoi(d.substr(5), &used);
      if (used == d.size() - 5) return {true, i};
    } catch (...) {}
  }
  throw ValueError(str(op, ": expected device \"cpu\", \"cuda\", \"cuda:N\" or an int, got \"", d, "\""));
}

void register_array(py::module_& m) {
  py::class_<Array>(m, "Array",
                    "An array produced by cnnops, on the CPU or a CUDA device; cnnops hands results back "
                    "as the caller's array type, and any DLPack consumer (numpy/torch/cupy .from_dlpack) "
                    "takes it zero-copy. .numpy() and .to(\"cpu\") copy a CUDA array to the host.")
      .def(
          "__dlpack__",
          [](const Array& a, py::object stream, py::object max_version, py::object dl_device, py::object copy) {
            (void)dl_device;
            if (!copy.is_none() && copy.cast<bool>())
              throw py::buffer_error("cnnops.Array.__dlpack__: copy=True is not supported");
            cuda::Stream consumer = 0;
            bool cross = false;
            if (a.t.device.type == DeviceType::CUDA && consumer_stream(stream, &consumer) && consumer != a.stream) {
              cuda::rt::stream_wait(consumer, a.stream, a.t.device.index, "Array.__dlpack__");
              cross = true;
            }
            return export_capsule(a, max_version, cross, consumer);
          },
          py::kw_only(), py::arg("stream") = py::none(), py::arg("max_version") = py::none(),
          py::arg("dl_device") = py::none(), py::arg("copy") = py::none())
      .def("__dlpack_device__",
           [](const Array& a) {
             return py::make_tuple(a.t.device.type == DeviceType::CPU ? int(kDLCPU) : int(kDLCUDA),
                                   a.t.device.type == DeviceType::CPU ? 0 : a.t.device.index);
           })
      .def_property_readonly("shape", [](const Array& a) { return py::tuple(py::cast(a.t.shape)); })
      .def_property_readonly("dtype", [](const Array& a) { return dtype_name(a.t.dtype); })
      .def_property_readonly("device", [](const Array& a) { return device_name(a.t.device); })
      .def_property_readonly("ndim", [](const Array& a) { return a.t.ndim(); })
      .def_property_readonly("size", [](const Array& a) { return a.t.numel(); })
      .def_property_readonly(
          "strides", [](const Array& a) { return py::tuple(py::cast(a.t.strides)); },
          "Strides in elements (not bytes), one per dimension.")
      .def(
          "permute",
          [](const Array& a, const std::vector<int64_t>& dims) {
            const int64_t nd = a.t.ndim();
            std::vector<bool> seen(static_cast<size_t>(nd), false);
            bool ok = static_cast<int64_t>(dims.size()) == nd;
            for (size_t i = 0; ok && i < dims.size(); ++i) {
              ok = dims[i] >= 0 && dims[i] < nd && !seen[dims[i]];
              if (ok) seen[dims[i]] = true;
            }
            CNNOPS_CHECK_VALUE(ok, "Array.permute: expected a permutation of 0..", nd - 1, ", got ", shape_str(dims));
            Tensor v = a.t;
            for (size_t i = 0; i < dims.size(); ++i) {
              v.shape[i] = a.t.shape[dims[i]];
              v.strides[i] = a.t.strides[dims[i]];
            }
            return Array{std::move(v), a.stream};
          },
          py::arg("dims"),
          "A view with the dimensions reordered (no copy), as torch.permute: "
          "cnnops.cuda.array(x_nhwc).permute((0, 3, 1, 2)) is a channels-last (N, C, H, W) array.")
      .def("numpy", &as_numpy, "A NumPy array with the values (a copy to the host for a CUDA array).")
      .def(
          "__array__",
          [](const Array& a, py::object dtype, py::object copy) {
            (void)copy;
            py::object arr = as_numpy(a);
            return dtype.is_none() ? arr : arr.attr("astype")(dtype);
          },
          py::arg("dtype") = py::none(), py::arg("copy") = py::none())
      .def(
          "to",
          [](const Array& a, py::object device) -> py::object {
            const auto d = parse_device(device, "Array.to");
            if (!d.first) return py::cast(to_host(a));
            return py::cast(to_cuda(a.t, d.second, "Array.to"));
          },
          py::arg("device"),
          "The array on `device` (\"cpu\", \"cuda\", \"cuda:N\"): itself when already there, else a copy.")
      .def("cpu", [](const Array& a) { return to_host(a); })
      .def(
          "cuda", [](const Array& a, int index) { return to_cuda(a.t, index, "Array.cuda"); }, py::arg("device") = 0)
      .def("__repr__", [](const Array& a) {
        return str("cnnops.Array(shape=", shape_str(a.t.shape), ", dtype=", dtype_name(a.t.dtype),
                   ", device=", device_name(a.t.device), ")");
      });
  m.def(
      "_cuda_array",
      [](py::object obj, int index) { return to_cuda(from_python(obj, "cuda.array", "x"), index, "cuda.array"); },
      py::arg("x"), py::arg("device") = 0);
}

py::object to_python(Tensor t) {
  const std::uintptr_t s = t.device.type == DeviceType::CUDA ? cuda::current_stream() : 0;
  return py::cast(Array{std::move(t), s});
}

}  // namespace cnnops
