"""Exports real architectures to small ONNX files for aiov's zoo test (tests/frontends/test_zoo.py).

Each model is torchvision's or transformers' own code with random (seeded) weights and a
small configuration, so the files stay a few hundred KB. Inputs have dynamic batch axes (and
sequence/time axes for text and audio). Next to each ``tests/zoo/NAME.onnx`` goes
``NAME.npz``: inputs and torch's outputs at two shapes, keyed ``in0.NAME``/``out0.NAME``
(case 0) and ``in1.NAME``/``out1.NAME`` (case 1).

Needs torch, torchvision, transformers and onnx (none of which aiov's tests need):

    pip install torch==2.13.0 torchvision transformers onnx
    python tools/export_zoo.py            # every model
    python tools/export_zoo.py bert gpt2  # some

Models are exported with torch.onnx's TorchScript exporter (dynamo=False) at opset 17, the
form most exported models in the wild have; ``*_dynamo`` entries use torch's newer default
exporter (dynamo=True, opset 18).
"""

from __future__ import annotations

import argparse
import os
import sys
import types
import warnings

import numpy as np

ZOO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "zoo")
OPSET = 17


def _import_torch():
    # PyPI's torchvision wheels are built against CUDA torch; with the CPU torch wheel its C
    # ops (nms, roi_align) cannot load and the import fails while registering their fake
    # kernels. No model exported here uses those ops, so that registration is skipped.
    sys.modules.setdefault("torchvision._meta_registrations", types.ModuleType("torchvision._meta_registrations"))
    import torch
    import torchvision
    import transformers

    if not torchvision.extension._has_ops():
        _define_nms(torch, torchvision)
    return torch, torchvision, transformers


def _define_nms(torch, torchvision):
    """torchvision::nms (SSDLite's post-processing) in plain torch, where torchvision's C ops
    cannot load: torch runs it, and torchvision's ONNX symbolic writes NonMaxSuppression."""
    lib = torch.library.Library("torchvision", "DEF")
    lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")

    def nms(boxes, scores, iou_threshold):
        # torchvision's kernel: boxes by descending score (stable), each kept one suppresses
        # the later boxes whose IoU with it exceeds the threshold.
        order = torch.sort(scores, stable=True, descending=True).indices
        x1, y1, x2, y2 = boxes.unbind(1)
        areas = (x2 - x1) * (y2 - y1)
        suppressed = torch.zeros(len(boxes), dtype=torch.bool)
        keep = []
        for i in order.tolist():
            if suppressed[i]:
                continue
            keep.append(i)
            w = (torch.minimum(x2[i], x2) - torch.maximum(x1[i], x1)).clamp(min=0)
            h = (torch.minimum(y2[i], y2) - torch.maximum(y1[i], y1)).clamp(min=0)
            inter = w * h
            suppressed |= inter / (areas[i] + areas - inter) > iou_threshold
        return torch.tensor(keep, dtype=torch.int64)

    lib.impl("nms", nms, "CPU")
    _define_nms.lib = lib  # the definition lives as long as its library object
    torchvision.ops.boxes._assert_has_ops = _ops_present


def _ops_present() -> None:
    """torchvision's check for its C ops, passed: torchvision::nms is defined above (a
    function, not a lambda, as TorchScript compiles it inside batched_nms)."""


torch, torchvision, transformers = _import_torch()
nn = torch.nn
# nn.MultiheadAttention's inference fast path is one fused aten op the exporter cannot emit.
torch.backends.mha.set_fastpath_enabled(False)

MODELS = {}


def model(name):
    def register(fn):
        MODELS[name] = fn
        return fn

    return register


class _Outputs(nn.Module):
    """Calls the wrapped model with keyword inputs and returns the named fields as a tuple."""

    def __init__(self, inner, input_names, output_names, **fixed):
        super().__init__()
        self.inner, self.input_names, self.output_names, self.fixed = inner, input_names, output_names, fixed

    def forward(self, *args):
        out = self.inner(**dict(zip(self.input_names, args)), **self.fixed)
        if isinstance(out, torch.Tensor):
            return out
        return tuple(out[name] for name in self.output_names)


def _ids(rng, batch, seq, vocab):
    return torch.from_numpy(rng.integers(0, vocab, (batch, seq))).long()


def _mask(batch, seq):
    mask = torch.ones(batch, seq, dtype=torch.long)
    mask[-1, seq - 2 :] = 0  # the last sequence is padded: masking must matter
    return mask


# Each builder returns (module, input names, output names, [case0 inputs, case1 inputs],
# dynamic axes per input name).


def _text(config_cls, model_cls, outputs, token_types=False, mask=True, **config):
    def build(rng):
        cfg = config_cls(vocab_size=100, **config)
        cfg._attn_implementation = "eager"  # the attention every exporter can trace
        inputs = ["input_ids"] + (["attention_mask"] if mask else []) + (["token_type_ids"] if token_types else [])
        net = _Outputs(
            model_cls(cfg),
            inputs,
            outputs,
            **({"use_cache": False} if "use_cache" in model_cls.forward.__code__.co_varnames else {}),
        )
        cases = []
        for batch, seq in ((1, 5), (2, 9)):
            case = [_ids(rng, batch, seq, 100)]
            if mask:
                case.append(_mask(batch, seq))
            if token_types:
                case.append(torch.zeros(batch, seq, dtype=torch.long))
            cases.append(case)
        return net, inputs, outputs, cases, {n: {0: "batch", 1: "sequence"} for n in inputs}

    return build


SMALL_TEXT = dict(
    hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, max_position_embeddings=64
)

# The text models: (config class, model class, outputs, config) at a tiny size; token type ids
# for the models that take them.
TEXT_MODELS = {
    "bert": ("BertConfig", "BertModel", ["last_hidden_state", "pooler_output"], SMALL_TEXT),
    "distilbert": (
        "DistilBertConfig",
        "DistilBertModel",
        ["last_hidden_state"],
        dict(dim=32, n_layers=2, n_heads=2, hidden_dim=64, max_position_embeddings=64),
    ),
    "gpt2": ("GPT2Config", "GPT2Model", ["last_hidden_state"], dict(n_embd=32, n_layer=2, n_head=2, n_positions=64)),
    "llama": (
        "LlamaConfig",
        "LlamaModel",
        ["last_hidden_state"],
        dict(SMALL_TEXT, num_attention_heads=4, num_key_value_heads=2),
    ),
    "t5_encoder": (
        "T5Config",
        "T5EncoderModel",
        ["last_hidden_state"],
        dict(d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4),
    ),
    "roberta": ("RobertaConfig", "RobertaModel", ["last_hidden_state"], dict(SMALL_TEXT, max_position_embeddings=70)),
}
TOKEN_TYPES = {"bert", "roberta"}
for _name, (_config, _model, _outputs, _kwargs) in TEXT_MODELS.items():
    model(_name)(
        _text(
            getattr(transformers, _config),
            getattr(transformers, _model),
            _outputs,
            token_types=_name in TOKEN_TYPES,
            **_kwargs,
        )
    )


def _vision(make, size=32, sizes=None, outputs=("logits",)):
    """An image model at batch 1 and 2 (and two image sizes when the model allows)."""

    def build(rng):
        net = make()
        shapes = sizes or [(1, size, size), (2, size, size)]
        cases = [[torch.from_numpy(_image(rng, b, h, w))] for b, h, w in shapes]
        axes = {0: "batch"} if sizes is None else {0: "batch", 2: "height", 3: "width"}
        return net, ["pixels"], list(outputs), cases, {"pixels": axes}

    return build


def _image(rng, batch, height, width):
    """Smooth random images (coarse noise, upsampled) plus fine noise: like photos, their
    content survives a deep random network's pooling, so outputs differ per image."""
    coarse = rng.standard_normal((batch, 3, 4, 4)) * 2
    rows = np.linspace(0, 3, height)[:, None]
    cols = np.linspace(0, 3, width)[None, :]
    r0, c0 = np.floor(rows).astype(int).clip(0, 2), np.floor(cols).astype(int).clip(0, 2)
    fr, fc = rows - r0, cols - c0
    img = (
        coarse[:, :, r0, c0] * (1 - fr) * (1 - fc)
        + coarse[:, :, r0 + 1, c0] * fr * (1 - fc)
        + coarse[:, :, r0, c0 + 1] * (1 - fr) * fc
        + coarse[:, :, r0 + 1, c0 + 1] * fr * fc
    )
    return (img + rng.standard_normal(img.shape) * 0.3).astype(np.float32)


TWO_SIZES = [(1, 32, 32), (2, 48, 40)]


def _mobilenet_v2():
    from torchvision.ops.misc import Conv2dNormActivation

    net = torchvision.models.mobilenet_v2(width_mult=0.25, num_classes=10)
    # MobileNetV2 keeps a 1280-channel last layer at any width; a thinner one keeps the file small.
    net.features[-1] = Conv2dNormActivation(
        net.features[-1][0].in_channels, 128, kernel_size=1, activation_layer=nn.ReLU6
    )
    net.classifier[1] = nn.Linear(128, 10)
    return net


def _mobilenet_v3(**kwargs):
    from torchvision.models.mobilenetv3 import MobileNetV3, _mobilenet_v3_conf

    setting, _ = _mobilenet_v3_conf("mobilenet_v3_small", width_mult=0.25, reduced_tail=True)
    return MobileNetV3(setting, last_channel=64, **kwargs)


def _small_resnet(block, widths=(8, 16, 32, 64)):
    from torchvision.models.resnet import ResNet

    net = ResNet(block, [1, 1, 1, 1], num_classes=10)
    # torchvision's ResNet with its layer builder, at an eighth of the width.
    net.inplanes = widths[0]
    net.conv1 = nn.Conv2d(3, widths[0], kernel_size=7, stride=2, padding=3, bias=False)
    net.bn1 = nn.BatchNorm2d(widths[0])
    net.layer1 = net._make_layer(block, widths[0], 1)
    net.layer2 = net._make_layer(block, widths[1], 1, stride=2)
    net.layer3 = net._make_layer(block, widths[2], 1, stride=2)
    net.layer4 = net._make_layer(block, widths[3], 1, stride=2)
    net.fc = nn.Linear(widths[3] * block.expansion, 10)
    return net


def _vit():
    from torchvision.models.vision_transformer import VisionTransformer

    return VisionTransformer(
        image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=32, mlp_dim=64, num_classes=10
    )


def _swin():
    from torchvision.models.swin_transformer import SwinTransformer

    return SwinTransformer(
        patch_size=[4, 4], embed_dim=16, depths=[1, 1], num_heads=[2, 2], window_size=[4, 4], num_classes=10
    )


def _efficientnet():
    from torchvision.models.efficientnet import EfficientNet, _efficientnet_conf

    setting, _ = _efficientnet_conf("efficientnet_b0", width_mult=0.25, depth_mult=0.25)
    return EfficientNet(setting, dropout=0.2, last_channel=128, num_classes=10)


def _convnext():
    from torchvision.models.convnext import CNBlockConfig, ConvNeXt

    return ConvNeXt([CNBlockConfig(8, 16, 1), CNBlockConfig(16, 32, 1), CNBlockConfig(32, None, 1)], num_classes=10)


def _regnet():
    from torchvision.models.regnet import BlockParams, RegNet

    params = BlockParams.from_init_params(depth=4, w_0=8, w_a=8.0, w_m=2.0, group_width=8)
    return RegNet(params, num_classes=10, stem_width=8)


def _densenet():
    from torchvision.models.densenet import DenseNet

    return DenseNet(growth_rate=8, block_config=(2, 2, 2), num_init_features=16, bn_size=2, num_classes=10)


def _shufflenet():
    from torchvision.models.shufflenetv2 import ShuffleNetV2

    return ShuffleNetV2([2, 2, 2], [8, 16, 32, 64, 128], num_classes=10)


def _squeezenet():
    from torchvision.models.squeezenet import Fire

    # SqueezeNet 1.1's layout (torchvision's Fire modules) at a quarter of the width.
    net = torchvision.models.squeezenet1_1(num_classes=10)
    net.features = nn.Sequential(
        nn.Conv2d(3, 16, kernel_size=3, stride=2),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
        Fire(16, 4, 16, 16),
        Fire(32, 4, 16, 16),
        nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
        Fire(32, 8, 32, 32),
        Fire(64, 8, 32, 32),
    )
    net.classifier[1] = nn.Conv2d(64, 10, kernel_size=1)
    for m in net.modules():  # torchvision's SqueezeNet initialisation, for the replaced layers
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_uniform_(m.weight)
            nn.init.zeros_(m.bias)
    return net


def _googlenet():
    from torchvision.models.googlenet import GoogLeNet, Inception

    net = GoogLeNet(num_classes=10, aux_logits=False, init_weights=True)
    # GoogLeNet's own Inception blocks with an eighth of the channels (the table in
    # torchvision's GoogLeNet.__init__, divided by 8).
    from torchvision.models.googlenet import BasicConv2d

    net.conv1 = BasicConv2d(3, 8, kernel_size=7, stride=2, padding=3)
    net.conv2 = BasicConv2d(8, 8, kernel_size=1)
    net.conv3 = BasicConv2d(8, 24, kernel_size=3, padding=1)
    net.inception3a = Inception(24, 8, 12, 16, 2, 4, 4)
    net.inception3b = Inception(32, 16, 16, 24, 4, 12, 8)
    net.inception4a = Inception(60, 24, 12, 26, 2, 6, 8)
    net.inception4b = Inception(64, 20, 14, 28, 3, 8, 8)
    net.inception4c = Inception(64, 16, 16, 32, 3, 8, 8)
    net.inception4d = Inception(64, 14, 18, 36, 4, 8, 8)
    net.inception4e = Inception(66, 32, 20, 40, 4, 16, 16)
    net.inception5a = Inception(104, 32, 20, 40, 4, 16, 16)
    net.inception5b = Inception(104, 48, 24, 48, 6, 16, 16)
    net.fc = nn.Linear(128, 10)
    return net


def _segmentation(kind):
    from torchvision.models._utils import IntermediateLayerGetter
    from torchvision.models.segmentation.deeplabv3 import ASPP, DeepLabV3
    from torchvision.models.segmentation.fcn import FCN, FCNHead
    from torchvision.models.segmentation.lraspp import LRASPP

    features = _mobilenet_v3().features
    # torchvision's heads on a thin MobileNetV3 backbone: the stride-8 and last feature maps.
    low, high = 3, len(features) - 1
    low_ch, high_ch = features[low].out_channels, features[high].out_channels
    if kind == "lraspp":
        backbone = IntermediateLayerGetter(features, {str(low): "low", str(high): "high"})
        return LRASPP(backbone, low_ch, high_ch, num_classes=3, inter_channels=16)
    backbone = IntermediateLayerGetter(features, {str(high): "out"})
    if kind == "fcn":
        return FCN(backbone, FCNHead(high_ch, 3))
    head = nn.Sequential(
        ASPP(high_ch, [2, 4, 6], out_channels=16),
        nn.Conv2d(16, 16, 3, padding=1, bias=False),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.Conv2d(16, 3, 1),
    )
    return DeepLabV3(backbone, head)


class _SegmentationOut(nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(x)["out"]


model("resnet")(_vision(lambda: _small_resnet(torchvision.models.resnet.BasicBlock), sizes=TWO_SIZES))
model("resnet_bottleneck")(_vision(lambda: _small_resnet(torchvision.models.resnet.Bottleneck, (4, 8, 16, 32))))
model("vit")(_vision(_vit))
model("mobilenet_v2")(_vision(_mobilenet_v2, sizes=TWO_SIZES))
model("mobilenet_v3")(_vision(lambda: _mobilenet_v3(num_classes=10)))
model("efficientnet")(_vision(_efficientnet, sizes=TWO_SIZES))
model("densenet")(_vision(_densenet))
model("googlenet")(_vision(_googlenet, size=64))
model("shufflenet")(_vision(_shufflenet))
model("squeezenet")(_vision(_squeezenet, size=64))
model("convnext")(_vision(_convnext))
model("regnet")(_vision(_regnet))
model("swin")(_vision(_swin))
model("deeplabv3")(_vision(lambda: _SegmentationOut(_segmentation("deeplabv3")), sizes=TWO_SIZES, outputs=("out",)))
model("fcn")(_vision(lambda: _SegmentationOut(_segmentation("fcn")), sizes=TWO_SIZES, outputs=("out",)))
model("lraspp")(_vision(lambda: _SegmentationOut(_segmentation("lraspp")), sizes=TWO_SIZES, outputs=("out",)))


class _Detections(nn.Module):
    """A torchvision detector on one image: its boxes, scores and labels as a tuple."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, image):
        if self.training:
            # Batch norm calibration (_calibrate_batch_norms): the features and heads only (a
            # detector's training step needs targets), over the image and its mirror images
            # so the 1x1 feature maps have more than one value per channel.
            mirrors = [image, image.flip(-1), image.flip(-2), image.flip(-1, -2)]
            images, _ = self.inner.transform(mirrors)
            return self.inner.head(list(self.inner.backbone(images.tensors).values()))
        found = self.inner([image])[0]
        return found["boxes"], found["scores"], found["labels"]


def _ssdlite():
    from functools import partial

    from torchvision.models.detection import _utils as det_utils
    from torchvision.models.detection.anchor_utils import DefaultBoxGenerator
    from torchvision.models.detection.ssd import SSD
    from torchvision.models.detection.ssdlite import SSDLiteFeatureExtractorMobileNet, SSDLiteHead
    from torchvision.models.mobilenetv3 import mobilenet_v3_large

    # ssdlite320_mobilenet_v3_large's construction (torchvision's builder has no width
    # argument) at a quarter of the width, 4 classes and a 160-pixel input; the score
    # threshold and candidate counts are lowered so random weights give a few dozen boxes.
    width = 0.25
    norm = partial(nn.BatchNorm2d, eps=0.001, momentum=0.03)
    backbone = mobilenet_v3_large(width_mult=width, reduced_tail=True, norm_layer=norm).features
    stages = [0] + [i for i, b in enumerate(backbone) if getattr(b, "_is_cn", False)] + [len(backbone) - 1]
    features = SSDLiteFeatureExtractorMobileNet(backbone, stages[-2], norm, width_mult=width)
    size = (160, 160)
    anchors = DefaultBoxGenerator([[2, 3] for _ in range(6)], min_ratio=0.2, max_ratio=0.95)
    channels = det_utils.retrieve_out_channels(features, size)
    classes = 4
    head = SSDLiteHead(channels, anchors.num_anchors_per_location(), classes, norm)
    return SSD(
        features,
        anchors,
        size,
        classes,
        head=head,
        score_thresh=0.8,
        nms_thresh=0.55,
        detections_per_img=40,
        topk_candidates=100,
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
    )


@model("ssdlite")
def _ssdlite_model(rng):
    # One image per call (torchvision detectors take a list); two image sizes, both resized
    # to the model's 160x160 inside the graph and the boxes scaled back.
    cases = [[torch.from_numpy(_image(rng, 1, h, w)[0] * 0.25 + 0.5)] for h, w in ((120, 160), (200, 150))]
    axes = {"image": {1: "height", 2: "width"}}
    return _Detections(_ssdlite()), ["image"], ["boxes", "scores", "labels"], cases, axes


@model("whisper_encoder")
def _whisper(rng):
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    cfg = transformers.WhisperConfig(
        vocab_size=100,
        d_model=32,
        encoder_layers=2,
        encoder_attention_heads=2,
        encoder_ffn_dim=64,
        num_mel_bins=16,
        max_source_positions=16,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=1,
        decoder_start_token_id=1,
    )
    cfg._attn_implementation = "eager"
    net = _Outputs(WhisperEncoder(cfg), ["input_features"], ["last_hidden_state"])
    # Whisper's encoder takes exactly 2 * max_source_positions frames: only the batch varies.
    cases = [[torch.from_numpy(rng.standard_normal((b, 16, 32)).astype(np.float32))] for b in (1, 2)]
    return net, ["input_features"], ["last_hidden_state"], cases, {"input_features": {0: "batch"}}


@model("wav2vec2")
def _wav2vec2(rng):
    cfg = transformers.Wav2Vec2Config(
        vocab_size=32,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        conv_dim=(16, 16),
        conv_stride=(5, 2),
        conv_kernel=(10, 3),
        num_feat_extract_layers=2,
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=4,
        do_stable_layer_norm=False,
        feat_extract_norm="group",
    )
    cfg._attn_implementation = "eager"
    net = _Outputs(transformers.Wav2Vec2Model(cfg), ["input_values"], ["last_hidden_state"])
    cases = [[torch.from_numpy(rng.standard_normal((b, t)).astype(np.float32))] for b, t in ((1, 400), (2, 560))]
    return net, ["input_values"], ["last_hidden_state"], cases, {"input_values": {0: "batch", 1: "time"}}


class _Recurrent(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(8, 16, batch_first=True, bidirectional=True)
        self.gru = nn.GRU(32, 8, batch_first=True)
        self.head = nn.Linear(8, 4)

    def forward(self, x):
        h, _ = self.lstm(x)
        h, _ = self.gru(h)
        return self.head(h)


@model("lstm_gru")
def _recurrent(rng):
    cases = [[torch.from_numpy(rng.standard_normal((b, t, 8)).astype(np.float32))] for b, t in ((1, 5), (3, 11))]
    return _Recurrent(), ["x"], ["y"], cases, {"x": {0: "batch", 1: "time"}}


class _IfLoop(nn.Module):
    """Data-dependent control flow, scripted so the exporter emits ONNX If and Loop."""

    def forward(self, x, steps):
        acc = x
        for _ in range(int(steps)):
            acc = acc * 0.5 + torch.tanh(acc)
        if acc.sum() > 0:
            acc = acc - 1.0
        else:
            acc = acc + 1.0
        return acc


@model("if_loop")
def _if_loop(rng):
    net = torch.jit.script(_IfLoop())
    cases = [
        [torch.from_numpy(rng.standard_normal((b, 4)).astype(np.float32)), torch.tensor(s)] for b, s in ((1, 2), (2, 3))
    ]
    return net, ["x", "steps"], ["y"], cases, {"x": {0: "batch"}}


@torch.no_grad()
def _randomize(net):
    """Fresh models are too tame to test with: zero biases and heads, batch norms that do
    nothing, so outputs hardly depend on the input. Constant parameters get noise and batch
    norms random statistics, so every layer's arithmetic shows in the output."""
    for module in net.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.running_mean is not None:
            module.running_mean.normal_(0, 0.2)
            module.running_var.uniform_(0.5, 2.0)
    for name, param in net.named_parameters():
        if param.numel() > 1 and float(param.std()) > 0:
            continue
        if param.dim() >= 2:
            param.normal_(0, 1 / np.sqrt(param[0].numel()))
        else:  # small biases: large ones drown a deep network's signal
            param.add_(torch.randn_like(param) * (0.02 if name.endswith("bias") else 0.2))


@torch.no_grad()
def _calibrate_batch_norms(net, cases):
    """Batch norm statistics measured on the inputs, as training would leave them: random
    weights shrink or grow activations layer by layer, and statistics that do not match
    them let the biases drown the input's signal."""
    norms = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a plain average over the calibration batches
    net.train()
    for case in cases:
        if case[0].shape[0] > 1:  # training-mode statistics need more than one value
            net(*case)
    net.eval()
    _randomize_affine(norms)


@torch.no_grad()
def _randomize_affine(norms):
    for m in norms:
        if m.affine:
            m.weight.uniform_(0.5, 1.5)
            m.bias.normal_(0, 0.2)


def _dynamo(build):
    """The same model through torch.onnx's newer exporter (dynamo=True, torch's default)."""

    def built(rng):
        return build(rng) + (True,)

    return built


for _name in ("bert", "gpt2"):
    model(f"{_name}_dynamo")(_dynamo(MODELS[_name]))


class _ListLoop(nn.Module):
    """A Python list appended to in a loop, scripted so the exporter emits a Loop carrying an
    ONNX sequence and ConcatFromSequence after it (torch.stack of the list)."""

    def forward(self, x, steps):
        rows: list[torch.Tensor] = []
        acc = x
        for i in range(int(steps)):
            acc = torch.tanh(acc) + float(i)
            rows.append(acc)
        return torch.stack(rows, 1), torch.cat(rows, 0)


@model("list_loop")
def _list_loop(rng):
    net = torch.jit.script(_ListLoop())
    cases = [
        [torch.from_numpy(rng.standard_normal((b, 4)).astype(np.float32)), torch.tensor(s)] for b, s in ((1, 2), (2, 5))
    ]
    return net, ["x", "steps"], ["stacked", "joined"], cases, {"x": {0: "batch"}}


def export(name, build):
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    net, inputs, outputs, cases, axes, *dynamo = build(rng)
    net.eval()
    if not isinstance(net, torch.jit.ScriptModule):
        _randomize(net)
        _calibrate_batch_norms(net, cases)
    path = os.path.join(ZOO, f"{name}.onnx")
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            torch.onnx.export(
                net,
                tuple(cases[0]),
                path,
                input_names=inputs,
                output_names=outputs,
                dynamic_shapes=({"args": tuple({d: torch.export.Dim.DYNAMIC for d in axes[n]} for n in inputs)}),
                opset_version=18,
                dynamo=True,
                external_data=False,
                verbose=False,
            )
        else:
            torch.onnx.export(
                net,
                tuple(cases[0]),
                path,
                input_names=inputs,
                output_names=outputs,
                dynamic_axes={**axes, **{o: {} for o in outputs}},
                opset_version=OPSET,
                dynamo=False,
            )
        arrays = {}
        for i, case in enumerate(cases):
            got = net(*case)
            got = (got,) if isinstance(got, torch.Tensor) else got
            for n, value in zip(inputs, case):
                arrays[f"in{i}.{n}"] = value.numpy()
            for n, value in zip(outputs, got):
                arrays[f"out{i}.{n}"] = value.numpy()
    np.savez_compressed(os.path.join(ZOO, f"{name}.npz"), **arrays)
    return os.path.getsize(path) + os.path.getsize(os.path.join(ZOO, f"{name}.npz"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help=f"models to export (default all): {', '.join(MODELS)}")
    args = parser.parse_args()
    os.makedirs(ZOO, exist_ok=True)
    for name in args.names or MODELS:
        try:
            size = export(name, MODELS[name])
            print(f"{name:20s} {size / 1024:8.0f} KB")
        except Exception as exc:  # one model failing to export must not stop the others
            print(f"{name:20s} export failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")


if __name__ == "__main__":
    main()
