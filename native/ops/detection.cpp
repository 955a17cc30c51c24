// Detection post-processing and region pooling: NonMaxSuppression (ONNX semantics, its output
// size depends on the scores) and ROIAlign. Boxes, scores, thresholds and batch indices are
// run-time values: every one that addresses memory or sizes a loop is checked first.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "kernels/dispatch.hpp"
#include "plan/registry.hpp"

namespace aiov {
namespace {

void expect_rank(const Node& n, const PortInfo& p, int64_t rank, const char* what) {
  if (p.shape.rank_known && p.shape.rank() != rank)
    throw InputError(n.describe() + ": " + what + " must have rank " + std::to_string(rank) + ", got " + p.shape.str());
}

// The f32 tensor inputs: `what` names the input and its layout ("boxes [batch, boxes, 4]").
void expect_f32_of_rank(const Node& n, const PortInfo& p, int64_t rank, const char* what) {
  if (p.type != ElementType::f32 && p.type != ElementType::dynamic)
    throw NotSupported(n.describe() + ": " + what + " must be f32, got " + type_name(p.type));
  expect_rank(n, p, rank, what);
}

// A scalar operand given as [] or [1].
double scalar_value(const std::string& who, const TensorView& t, const char* what) {
  if (t.count() != 1) throw InputError(who + ": " + what + " must hold one value, got shape " + dims_str(t.shape));
  switch (t.type) {
    case ElementType::f32:
      return t.as<float>()[0];
    case ElementType::f64:
      return t.as<double>()[0];
    case ElementType::i64:
      return (double)t.as<int64_t>()[0];
    case ElementType::i32:
      return t.as<int32_t>()[0];
    default:
      throw InputError(who + ": " + what + " has element type " + type_name(t.type));
  }
}

// ---- NonMaxSuppression --------------------------------------------------------------------

struct NmsBox {
  float y1, x1, y2, x2;
};

NmsBox box_at(const float* b, bool center) {
  if (center) {
    const float cx = b[0], cy = b[1], hw = b[2] / 2, hh = b[3] / 2;
    return {cy - hh, cx - hw, cy + hh, cx + hw};
  }
  return {std::min(b[0], b[2]), std::min(b[1], b[3]), std::max(b[0], b[2]), std::max(b[1], b[3])};
}

// Whether a suppresses b: their intersection over union exceeds the threshold. Empty boxes
// (and NaN coordinates) never suppress.
bool suppresses(const NmsBox& a, const NmsBox& b, float iou_threshold) {
  const float area_a = (a.y2 - a.y1) * (a.x2 - a.x1), area_b = (b.y2 - b.y1) * (b.x2 - b.x1);
  if (!(area_a > 0) || !(area_b > 0)) return false;
  const float ih = std::min(a.y2, b.y2) - std::max(a.y1, b.y1), iw = std::min(a.x2, b.x2) - std::max(a.x1, b.x1);
  if (!(ih > 0) || !(iw > 0)) return false;
  const float inter = ih * iw;
  return inter / (area_a + area_b - inter) > iou_threshold;
}

// (batch, class, box) triples ONNX's NonMaxSuppression selects, batch by batch, class by class.
std::vector<int64_t> nms_select(const Node& n, const std::vector<const TensorView*>& in) {
  const std::string who = n.describe();
  const TensorView &boxes = *in[0], &scores = *in[1];
  const int64_t batches = boxes.shape[0], count = boxes.shape[1], classes = scores.shape[1];
  int64_t max_out = 0;
  if (in.size() > 2 && in[2]) {
    const double m = scalar_value(who, *in[2], "max_output_boxes_per_class");
    if (m < 0) throw InputError(who + ": max_output_boxes_per_class must be 0 or more, got " + std::to_string(m));
    max_out = (int64_t)std::min<double>(m, (double)count);  // no more than there are boxes
  }
  const float iou = in.size() > 3 && in[3] ? (float)scalar_value(who, *in[3], "iou_threshold") : 0.0f;
  const bool has_score_threshold = in.size() > 4 && in[4];
  const float min_score = has_score_threshold ? (float)scalar_value(who, *in[4], "score_threshold") : 0.0f;
  const bool center = n.attr_int("center_point_box") != 0;
  std::vector<int64_t> selected;
  std::vector<int64_t> candidates;
  std::vector<NmsBox> kept;
  for (int64_t b = 0; b < batches && max_out > 0; ++b) {
    const float* bx = boxes.as<float>() + b * count * 4;
    for (int64_t c = 0; c < classes; ++c) {
      const float* sc = scores.as<float>() + (b * classes + c) * count;
      candidates.clear();
      for (int64_t i = 0; i < count; ++i)
        if (!std::isnan(sc[i]) && (!has_score_threshold || sc[i] > min_score)) candidates.push_back(i);
      std::stable_sort(candidates.begin(), candidates.end(), [&](int64_t i, int64_t j) { return sc[i] > sc[j]; });
      kept.clear();
      for (int64_t i : candidates) {
        if ((int64_t)kept.size() >= max_out) break;
        const NmsBox box = box_at(bx + i * 4, center);
        bool keep = true;
        for (const NmsBox& k : kept)
          if (suppresses(k, box, iou)) {
            keep = false;
            break;
          }
        if (!keep) continue;
        kept.push_back(box);
        selected.insert(selected.end(), {b, c, i});
      }
    }
  }
  return selected;
}

std::vector<PortInfo> infer_nms(const InferContext& c) {
  const Node& n = c.node;
  expect_f32_of_rank(n, c.in[0], 3, "boxes [batch, boxes, 4]");
  expect_f32_of_rank(n, c.in[1], 3, "scores [batch, classes, boxes]");
  const Dims &b = c.in[0].shape.dims, &s = c.in[1].shape.dims;
  if (c.in[0].shape.rank_known && c.in[1].shape.rank_known) {
    if (b[2] >= 0 && b[2] != 4)
      throw InputError(n.describe() + ": boxes must be [batch, boxes, 4], got " + dims_str(b));
    for (int d : {0, 1}) {
      const int64_t bd = b[d], sd = s[d == 0 ? 0 : 2];
      if (bd >= 0 && sd >= 0 && bd != sd)
        throw InputError(n.describe() + ": scores " + dims_str(s) + " do not fit boxes " + dims_str(b));
    }
  }
  bool known = true;
  for (size_t i = 0; i < c.in.size(); ++i) known = known && c.in_value[i];
  if (!known) return {PortInfo{ElementType::i64, PartialShape(Dims{kDynamic, 3})}};
  return {PortInfo{ElementType::i64, PartialShape(Dims{(int64_t)nms_select(n, c.in_value).size() / 3, 3})}};
}

KernelFn prepare_nms(const PrepareContext& ctx) {
  const Node& n = ctx.node;
  return [&n](const KernelArgs& a) {
    std::vector<const TensorView*> in(a.in, a.in + n.inputs.size());
    const std::vector<int64_t> selected = nms_select(n, in);
    int64_t* out = static_cast<int64_t*>(output_memory(a, 0, Dims{(int64_t)selected.size() / 3, 3}));
    std::copy(selected.begin(), selected.end(), out);
  };
}

// ---- ROIAlign -----------------------------------------------------------------------------

// Samples per bin along one axis are bounded: a region of absurd size would otherwise loop
// for hours.
constexpr double kMaxSamplesPerBin = 1 << 16;

// The two spellings of the op: ONNX's (aiov.RoiAlign) and OpenVINO's ROIAlign, which agree
// where the latter accepts them (avg mode, no half-pixel shift).
struct RoiAlignAttrs {
  int64_t height, width;
  bool half_pixel;
};

RoiAlignAttrs roi_align_attrs(const Node& n) {
  if (n.op == "ROIAlign") return {n.attr_int("pooled_h"), n.attr_int("pooled_w"), false};
  return {n.attr_int("output_height"), n.attr_int("output_width"),
          n.attr_str("coordinate_transformation_mode") == "half_pixel"};
}

std::vector<PortInfo> infer_roi_align(const InferContext& c) {
  const Node& n = c.node;
  expect_f32_of_rank(n, c.in[0], 4, "data [N, C, H, W]");
  expect_f32_of_rank(n, c.in[1], 2, "rois [R, 4]");
  expect_rank(n, c.in[2], 1, "batch_indices [R]");
  const PortInfo& idx = c.in[2];
  if (idx.type != ElementType::i32 && idx.type != ElementType::i64 && idx.type != ElementType::dynamic)
    throw InputError(n.describe() + ": batch_indices must be i32 or i64, got " + type_name(idx.type));
  int64_t rois = kDynamic, channels = kDynamic;
  if (c.in[1].shape.rank_known) {
    rois = c.in[1].shape.dims[0];
    if (c.in[1].shape.dims[1] >= 0 && c.in[1].shape.dims[1] != 4)
      throw InputError(n.describe() + ": rois must be [R, 4], got " + c.in[1].shape.str());
  }
  if (idx.shape.rank_known && rois >= 0 && idx.shape.dims[0] >= 0 && idx.shape.dims[0] != rois)
    throw InputError(n.describe() + ": batch_indices " + idx.shape.str() + " must have one entry per roi");
  if (c.in[0].shape.rank_known) channels = c.in[0].shape.dims[1];
  return {
      PortInfo{c.in[0].type, PartialShape(Dims{rois, channels, roi_align_attrs(n).height, roi_align_attrs(n).width})}};
}

KernelFn prepare_roi_align(const PrepareContext& ctx) {
  const Node& n = ctx.node;
  const Dims x = ctx.in[0].shape;
  const int64_t rois = ctx.in[1].shape[0], C = x[1], H = x[2], W = x[3];
  const RoiAlignAttrs attrs = roi_align_attrs(n);
  const int64_t ph = attrs.height, pw = attrs.width, ratio = n.attr_int("sampling_ratio");
  const float scale = (float)n.attr_float("spatial_scale");
  const bool max_mode = n.attr_str("mode") == "max";
  const bool half_pixel = attrs.half_pixel;
  const std::string who = n.describe();
  return [=](const KernelArgs& a) {
    const float* data = a.in[0]->as<float>();
    const float* roi = a.in[1]->as<float>();
    const TensorView& bi = *a.in[2];
    float* out = a.out[0]->as<float>();
    for (int64_t r = 0; r < rois; ++r) {
      const int64_t b = bi.type == ElementType::i64 ? bi.as<int64_t>()[r] : bi.as<int32_t>()[r];
      if (b < 0 || b >= x[0])
        throw InputError(who + ": batch_indices[" + std::to_string(r) + "] = " + std::to_string(b) +
                         " is out of range for a batch of " + std::to_string(x[0]));
      const float* box = roi + r * 4;
      for (int k = 0; k < 4; ++k)
        if (!std::isfinite(box[k]))
          throw InputError(who + ": roi " + std::to_string(r) + " has a non-finite coordinate");
      const float offset = half_pixel ? 0.5f : 0.0f;
      const float x1 = box[0] * scale - offset, y1 = box[1] * scale - offset;
      float rw = box[2] * scale - offset - x1, rh = box[3] * scale - offset - y1;
      if (!half_pixel) {
        rw = std::max(rw, 1.0f);
        rh = std::max(rh, 1.0f);
      }
      const float bh = rh / (float)ph, bw = rw / (float)pw;
      const double gh_d = ratio > 0 ? ratio : std::ceil((double)rh / ph),
                   gw_d = ratio > 0 ? ratio : std::ceil((double)rw / pw);
      if (gh_d > kMaxSamplesPerBin || gw_d > kMaxSamplesPerBin)
        throw InputError(who + ": roi " + std::to_string(r) + " needs more than " +
                         std::to_string((int64_t)kMaxSamplesPerBin) + " samples per bin side");
      const int64_t gh = std::max<int64_t>((int64_t)gh_d, 0), gw = std::max<int64_t>((int64_t)gw_d, 0);
      const float samples = (float)std::max<int64_t>(gh * gw, 1);
      for (int64_t ch = 0; ch < C; ++ch) {
        const float* plane = data + (b * C + ch) * H * W;
        float* o = out + ((r * C + ch) * ph) * pw;
        for (int64_t py = 0; py < ph; ++py)
          for (int64_t px = 0; px < pw; ++px) {
            float acc = max_mode ? -std::numeric_limits<float>::infinity() : 0.0f;
            bool any = false;
            for (int64_t iy = 0; iy < gh; ++iy) {
              float y = y1 + py * bh + (iy + 0.5f) * bh / (float)gh;
              for (int64_t ix = 0; ix < gw; ++ix) {
                float xx = x1 + px * bw + (ix + 0.5f) * bw / (float)gw;
                float v = 0.0f;
                any = true;
                // An empty image has nothing to sample: zeros.
                if (H > 0 && W > 0 && !(y < -1.0f || y > (float)H || xx < -1.0f || xx > (float)W)) {
                  float yc = std::max(y, 0.0f), xc = std::max(xx, 0.0f);
                  int64_t y0 = (int64_t)yc, x0 = (int64_t)xc, y1i, x1i;
                  if (y0 >= H - 1) {
                    y0 = y1i = H - 1;
                    yc = (float)y0;
                  } else {
                    y1i = y0 + 1;
                  }
                  if (x0 >= W - 1) {
                    x0 = x1i = W - 1;
                    xc = (float)x0;
                  } else {
                    x1i = x0 + 1;
                  }
                  const float ly = yc - y0, lx = xc - x0, hy = 1 - ly, hx = 1 - lx;
                  const float w1 = hy * hx, w2 = hy * lx, w3 = ly * hx, w4 = ly * lx;
                  const float v1 = plane[y0 * W + x0], v2 = plane[y0 * W + x1i], v3 = plane[y1i * W + x0],
                              v4 = plane[y1i * W + x1i];
                  // ONNX's max mode takes the largest weighted corner, not the interpolated value.
                  v = max_mode ? std::max(std::max(w1 * v1, w2 * v2), std::max(w3 * v3, w4 * v4))
                               : w1 * v1 + w2 * v2 + w3 * v3 + w4 * v4;
                }
                acc = max_mode ? std::max(acc, v) : acc + v;
              }
            }
            o[py * pw + px] = max_mode ? (any ? acc : 0.0f) : acc / samples;
          }
      }
    }
  };
}

}  // namespace

void register_detection_ops(OpRegistry& r) {
  // ONNX's selection (output [selected, 3] of batch, class, box); OpenVINO's NonMaxSuppression
  // has other outputs and sorting, so this is aiov's own.
  r.add(with_data_dependent_shape(OpDef{"aiov.NonMaxSuppression", 2, 5, infer_nms, prepare_nms}
                                      .with_attrs({int_attr("center_point_box", 0).between(0, 1)})
                                      .ir({"aiov.NonMaxSuppression"}, "aiov1")
                                      .onnx_op("NonMaxSuppression", 10)
                                      .opset_builder("onnx_non_max_suppression")));
  // ONNX's RoiAlign. OpenVINO's ROIAlign differs in max mode (it takes the largest
  // interpolated value, ONNX the largest weighted corner) and in its half_pixel rule.
  r.add(OpDef{"aiov.RoiAlign", 3, 3, infer_roi_align, prepare_roi_align}
            .with_attrs({int_attr("output_height", 1).at_least(1), int_attr("output_width", 1).at_least(1),
                         int_attr("sampling_ratio", 0).at_least(0), float_attr("spatial_scale", 1.0),
                         str_attr("mode", "avg", {"avg", "max"}),
                         str_attr("coordinate_transformation_mode", "half_pixel", {"half_pixel", "output_half_pixel"})})
            .ir({"aiov.RoiAlign"}, "aiov1")
            .onnx_op("RoiAlign", 16)
            .opset_builder("onnx_roi_align"));
  // OpenVINO's ROIAlign where its results are ONNX's: other modes are refused, not answered
  // by another rule.
  r.add(OpDef{"ROIAlign", 3, 3, infer_roi_align, prepare_roi_align}
            .with_attrs({int_attr("pooled_h", 1).at_least(1), int_attr("pooled_w", 1).at_least(1),
                         int_attr("sampling_ratio", 0).at_least(0), float_attr("spatial_scale", 1.0),
                         str_attr("mode", "avg", {"avg"}), str_attr("aligned_mode", "asymmetric", {"asymmetric"})})
            .ir({"ROIAlign"}, "opset9")
            .opset_builder("roi_align"));
}

}  // namespace aiov
