"""The suite's PyTorch models, each from its library's constructor with random weights (nothing
is downloaded): torchvision's ResNet-18 and MobileNetV3-Small, timm's ViT, Hugging Face's GPT-2
and BERT at small configurations. Dropout is off: every mode computes the same step."""

from __future__ import annotations

from workloads.zoo import config


def resnet18(p: dict):
    from eagerbench.models.vision_ops import import_torchvision

    return import_torchvision().models.resnet18(num_classes=config.CLASSES)


def mobilenet(p: dict):
    from eagerbench.models.vision_ops import import_torchvision

    return import_torchvision().models.mobilenet_v3_small(num_classes=config.CLASSES,
                                                          dropout=0.0)


def vit(p: dict):
    from eagerbench.models.vision_ops import import_torchvision

    import_torchvision()   # timm imports torchvision
    import timm

    c = config.VIT
    return timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=config.IMAGE[0],
                             patch_size=c["patch"], depth=c["depth"], num_classes=config.CLASSES,
                             global_pool="avg", class_token=False, drop_rate=0.0)


def gpt(p: dict):
    from eagerbench.models.vision_ops import before_torch_libraries

    before_torch_libraries()   # transformers imports torchvision where it is installed
    from transformers import GPT2Config, GPT2LMHeadModel

    c = config.GPT
    return GPT2LMHeadModel(GPT2Config(
        vocab_size=c["vocab"], n_positions=c["seq"], n_embd=c["width"], n_layer=c["depth"],
        n_head=c["heads"], resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
        bos_token_id=0, eos_token_id=0, tie_word_embeddings=False))


def bert(p: dict):
    from eagerbench.models.vision_ops import before_torch_libraries

    before_torch_libraries()
    from transformers import BertConfig, BertForSequenceClassification

    c = config.BERT
    return BertForSequenceClassification(BertConfig(
        vocab_size=c["vocab"], hidden_size=c["width"], num_hidden_layers=c["depth"],
        num_attention_heads=c["heads"], intermediate_size=4 * c["width"],
        max_position_embeddings=c["seq"], num_labels=c["labels"], hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0, classifier_dropout=0.0))
