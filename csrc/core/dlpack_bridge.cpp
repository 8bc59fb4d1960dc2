#include "core/dlpack_bridge.h"

#include <pybind11/stl.h>

#include <cstring>

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
    case kDLCUDAManaged: t.device = {DeviceType::CUDA, dl.device.device_id}; break;
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
  py::object cap;
  // An exporter that cannot describe its array (NumPy's object, string or structured dtypes)
  // raises BufferError: that is a wrong argument of this op.
  auto refused = [&](py::error_already_set& e) {
    std::string dt = py::hasattr(obj, "dtype") ? std::string(py::str(obj.attr("dtype"))) : std::string("?");
    return TypeError(str(op, ": expected `", argname, "` with a numeric dtype, got an array of dtype ", dt,
                         " that cannot be exported through DLPack (", e.what(), ")"));
  };
  try {
    cap = obj.attr("__dlpack__")(py::arg("max_version") = py::make_tuple(1, 0));
  } catch (py::error_already_set& e) {
    if (e.matches(PyExc_BufferError)) throw refused(e);
    if (!e.matches(PyExc_TypeError)) throw;
    try {
      cap = obj.attr("__dlpack__")();
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
struct ExportCtx {
  Tensor t;
  std::vector<int64_t> shape, strides;
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

static py::object export_capsule(const Array& a, py::object max_version) {
  bool versioned = false;
  if (!max_version.is_none()) {
    auto mv = max_version.cast<std::pair<int, int>>();
    versioned = mv.first >= 1;
  }
  auto* ctx = new ExportCtx{a.t, {}, {}};
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

void register_array(py::module_& m) {
  py::class_<Array>(m, "Array",
                    "A tensor produced by cnnops; turn it into your array type with "
                    "numpy/torch/cupy .from_dlpack (cnnops does this for you).")
      .def(
          "__dlpack__",
          [](const Array& a, py::object stream, py::object max_version, py::object dl_device, py::object copy) {
            (void)stream;
            (void)dl_device;
            if (!copy.is_none() && copy.cast<bool>())
              throw py::buffer_error("cnnops.Array.__dlpack__: copy=True is not supported");
            return export_capsule(a, max_version);
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
      .def_property_readonly("device", [](const Array& a) { return device_name(a.t.device); });
}

py::object to_python(Tensor t) { return py::cast(Array{std::move(t)}); }

}  // namespace cnnops
