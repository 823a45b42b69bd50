"""A tiny random-weight Llama 3.2 Vision (Mllama) checkpoint, built on first use and cached on disk.

Like the tiny text model (llama_stack.models.tiny): the real Llama 3 vocabulary, so the real
tokenizer and chat format drive it, plus the image token (id 128256, as in Meta's checkpoints),
a few small text layers with two cross-attention layers, and a small vision encoder. Next to
the weights it saves the real transformers Mllama image processor, configured for its tile size,
so images go through the same preprocessing (resize, tiles, aspect-ratio ids) as the real model.
Mechanics only: its text is gibberish, and it does not see anything.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llama_stack.models.tiny import ensure_built

TINY_VISION_MODEL_ID = "tiny-random-llama-3-vision"
RECIPE_VERSION = 1
SEED = 20240925
TEXT_INIT_STD = 0.2
VISION_INIT_STD = 0.05
IMAGE_TOKEN_ID = 128256  # where llama-models' ChatFormat puts <|image|> in the token ids

TILE_SIZE = 28  # pixels per tile side: 2x2 patches of 14 pixels
TINY_MLLAMA_CONFIG: dict[str, Any] = {
    "image_token_index": IMAGE_TOKEN_ID,
    "text_config": {
        "vocab_size": 128256,
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 4,
        "cross_attention_layers": [1, 3],
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 8192,
        "rope_theta": 500000.0,
        "rms_norm_eps": 1e-5,
        "tie_word_embeddings": False,
        "bos_token_id": 128000,
        "eos_token_id": [128001, 128008, 128009],
        "pad_token_id": 128004,
    },
    "vision_config": {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_global_layers": 1,
        "attention_heads": 2,
        "image_size": TILE_SIZE,
        "patch_size": 14,
        "max_num_tiles": 4,
        "intermediate_layers_indices": [0, 1],
        "vision_output_dim": 96,  # hidden_size x (intermediate layers + the last)
    },
}


def _recipe() -> dict[str, Any]:
    return {
        "recipe_version": RECIPE_VERSION,
        "seed": SEED,
        "init_std": [TEXT_INIT_STD, VISION_INIT_STD],
        "config": TINY_MLLAMA_CONFIG,
        "tile_size": TILE_SIZE,
    }


def ensure_tiny_vision_model(root: str | Path, name: str = TINY_VISION_MODEL_ID) -> Path:
    """The directory of the tiny Mllama under `root`, building it first if it is not cached."""
    return ensure_built(root, name, _recipe(), build_tiny_vision_model)


def mllama_image_processor_class() -> Any:
    """transformers' Mllama image processor class that needs no torchvision: the PIL one of
    transformers 5 (its default class wants torchvision), the only one of transformers 4."""
    try:
        from transformers.models.mllama.image_processing_pil_mllama import MllamaImageProcessorPil
    except ImportError:
        from transformers import MllamaImageProcessor

        return MllamaImageProcessor
    return MllamaImageProcessorPil


def tiny_image_processor() -> Any:
    """transformers' own Mllama image processor with its defaults, except the tile size, which
    must match the tiny vision encoder."""
    return mllama_image_processor_class()(
        size={"height": TILE_SIZE, "width": TILE_SIZE},
        max_image_tiles=TINY_MLLAMA_CONFIG["vision_config"]["max_num_tiles"],
    )


def build_tiny_vision_model(dest: str | Path) -> None:
    """Write a tiny MllamaForConditionalGeneration and its image processor config into `dest`."""
    import torch
    from transformers import MllamaConfig, MllamaForConditionalGeneration

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    config = MllamaConfig(**TINY_MLLAMA_CONFIG)
    with torch.device("cpu"):
        model: Any = MllamaForConditionalGeneration(config)
    generator = torch.Generator().manual_seed(SEED)
    with torch.no_grad():
        for param_name, param in sorted(model.named_parameters(), key=lambda item: item[0]):
            is_norm = "norm" in param_name.rsplit(".", 2)[-2] if "." in param_name else False
            if is_norm and param_name.endswith("weight"):
                param.fill_(1.0)
            elif is_norm and param_name.endswith("bias"):
                param.zero_()
            else:
                std = VISION_INIT_STD if "vision_model" in param_name else TEXT_INIT_STD
                param.copy_(torch.randn(param.shape, generator=generator) * std)
    model.eval()
    model.save_pretrained(dest, safe_serialization=True)
    tiny_image_processor().save_pretrained(dest)
