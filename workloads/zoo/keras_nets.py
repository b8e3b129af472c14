"""Keras 3 counterparts of the suite's PyTorch models, built from Keras's own layers where
``keras.applications`` has none (it has MobileNetV3, no ResNet-18, ViT, GPT or BERT;
keras-hub has them, but it pulls in tensorflow-text, which installs ``tensorflow`` over
``tensorflow-cpu``). Each matches its PyTorch model's configuration (depths, widths, heads),
not its every detail."""

from __future__ import annotations

from workloads.zoo import config


def _keras():
    import keras

    return keras


def _basic_block(x, filters: int, stride: int):
    layers = _keras().layers
    shortcut = x
    y = layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False)(x)
    y = layers.ReLU()(layers.BatchNormalization()(y))
    y = layers.Conv2D(filters, 3, padding="same", use_bias=False)(y)
    y = layers.BatchNormalization()(y)
    if stride != 1 or shortcut.shape[-1] != filters:
        shortcut = layers.Conv2D(filters, 1, strides=stride, use_bias=False)(x)
        shortcut = layers.BatchNormalization()(shortcut)
    return layers.ReLU()(layers.Add()([y, shortcut]))


def resnet18(p: dict):
    """ResNet-18 (two basic blocks per stage, 64 to 512 channels), as torchvision's."""
    keras = _keras()
    layers = keras.layers
    inputs = keras.Input(config.IMAGE)
    x = layers.ZeroPadding2D(3)(inputs)
    x = layers.Conv2D(64, 7, strides=2, use_bias=False)(x)
    x = layers.ReLU()(layers.BatchNormalization()(x))
    x = layers.MaxPooling2D(3, strides=2, padding="same")(x)
    for i, filters in enumerate((64, 128, 256, 512)):
        x = _basic_block(x, filters, 1 if i == 0 else 2)
        x = _basic_block(x, filters, 1)
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, layers.Dense(config.CLASSES)(x), name="resnet18")


def mobilenet(p: dict):
    """keras.applications' MobileNetV3-Small, no dropout, no preprocessing layer."""
    return _keras().applications.MobileNetV3Small(
        input_shape=config.IMAGE, weights=None, classes=config.CLASSES, dropout_rate=0.0,
        include_preprocessing=False, classifier_activation=None)


def _encoder_block(x, width: int, heads: int, causal: bool):
    """A pre-norm transformer block (GPT-2's and ViT's order): attention, then an MLP of 4x."""
    layers = _keras().layers
    y = layers.LayerNormalization(epsilon=1e-5)(x)
    y = layers.MultiHeadAttention(heads, width // heads)(y, y, use_causal_mask=causal)
    x = layers.Add()([x, y])
    y = layers.LayerNormalization(epsilon=1e-5)(x)
    y = layers.Dense(4 * width, activation="gelu")(y)
    return layers.Add()([x, layers.Dense(width)(y)])


def _positions(x, length: int, width: int):
    """``x`` plus a learned position embedding."""
    keras = _keras()

    class Positions(keras.layers.Layer):  # type: ignore[name-defined]  # Keras is untyped
        def build(self, shape):
            self.table = self.add_weight(shape=(length, width), initializer="random_normal")

        def call(self, tokens):
            return tokens + self.table

    return Positions()(x)


def vit(p: dict):
    """A small ViT: 8x8 patches of the 64x64 image, a class token, pre-norm blocks."""
    keras = _keras()
    layers = keras.layers
    width, depth, heads = config.VIT["width"], config.VIT["depth"], config.VIT["heads"]
    inputs = keras.Input(config.IMAGE)
    x = layers.Conv2D(width, config.VIT["patch"], strides=config.VIT["patch"])(inputs)
    x = layers.Reshape((-1, width))(x)
    tokens = (config.IMAGE[0] // config.VIT["patch"]) ** 2
    x = _positions(x, tokens, width)
    for _ in range(depth):
        x = _encoder_block(x, width, heads, causal=False)
    x = layers.GlobalAveragePooling1D()(layers.LayerNormalization(epsilon=1e-6)(x))
    return keras.Model(inputs, layers.Dense(config.CLASSES)(x), name="vit")


def gpt(p: dict):
    """A GPT-2-style decoder: token and position embeddings, causal pre-norm blocks, a final
    norm and a language-model head."""
    keras = _keras()
    layers = keras.layers
    c = config.GPT
    inputs = keras.Input((c["seq"],), dtype="int32")
    x = _positions(layers.Embedding(c["vocab"], c["width"])(inputs), c["seq"], c["width"])
    for _ in range(c["depth"]):
        x = _encoder_block(x, c["width"], c["heads"], causal=True)
    x = layers.LayerNormalization(epsilon=1e-5)(x)
    return keras.Model(inputs, layers.Dense(c["vocab"], use_bias=False)(x), name="gpt")


def bert(p: dict):
    """A BERT-style encoder classifying a sequence: embeddings, post-norm blocks (BERT's
    order), the first token's state through a tanh pooler, and a two-way classifier."""
    keras = _keras()
    layers = keras.layers
    c = config.BERT
    inputs = keras.Input((c["seq"],), dtype="int32")
    x = _positions(layers.Embedding(c["vocab"], c["width"])(inputs), c["seq"], c["width"])
    x = layers.LayerNormalization(epsilon=1e-12)(x)
    for _ in range(c["depth"]):
        y = layers.MultiHeadAttention(c["heads"], c["width"] // c["heads"])(x, x)
        x = layers.LayerNormalization(epsilon=1e-12)(layers.Add()([x, y]))
        y = layers.Dense(4 * c["width"], activation="gelu")(x)
        x = layers.LayerNormalization(epsilon=1e-12)(layers.Add()([x, layers.Dense(c["width"])(y)]))
    pooled = layers.Dense(c["width"], activation="tanh")(x[:, 0])
    return keras.Model(inputs, layers.Dense(c["labels"])(pooled), name="bert")
