"""Encoders: a spec names the kind and its parameters; a registry builds the module.

Built in: ``hashed-ngram`` (the default; trainable from scratch on CPU) and ``sentence-transformer``
(alias ``minilm``; a pretrained backbone, ``full`` or ``frozen-head``; needs the ``st`` extra).
"""

from typing import Any

from crucible_ray.encoders._base import Encoder, EncoderModule, Role
from crucible_ray.encoders._checkpoint import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_VERSION,
    load_encoder,
    read_checkpoint,
    save_checkpoint,
)
from crucible_ray.encoders._embedding_cache import (
    CachingEncoder,
    EmbeddingCache,
    EmbeddingCacheConfig,
    cache_config,
    default_cache_dir,
    evict,
    model_key,
    parse_size,
    with_embedding_cache,
)
from crucible_ray.encoders._export import EXPORT_INFO, export_sentence_transformer
from crucible_ray.encoders._features import (
    CachedFeatureEncoder,
    FeatureTable,
    backbone_key,
    feature_table,
    is_frozen_backbone,
)
from crucible_ray.encoders._hashed import HashedNgramModule, HashedNgramParams, hashed_state_shapes
from crucible_ray.encoders._registry import (
    EncoderKind,
    adopt_kinds,
    build_encoder,
    encoder_kinds,
    expected_state_shapes,
    mark_builtin,
    normalize_spec,
    plugin_kinds,
    register_alias,
    register_encoder,
    resolve_device,
)
from crucible_ray.encoders._spec import parse_scalar, parse_spec, spec_to_string

DEFAULT_ENCODER = "hashed-ngram"


def _sentence_transformer_factory(params: Any) -> Any:
    # Imported on use: sentence-transformers is an optional extra.
    from crucible_ray.encoders._sentence import SentenceTransformerModule

    return SentenceTransformerModule(params)


def _register_builtins() -> None:
    from crucible_ray.encoders._sentence import SentenceTransformerParams, sentence_state_shapes

    register_encoder(
        "hashed-ngram",
        HashedNgramParams,
        HashedNgramModule,
        "bag of hashed character n-grams and words; fast, trainable from scratch on CPU",
        state_shapes=hashed_state_shapes,
    )
    register_encoder(
        "sentence-transformer",
        SentenceTransformerParams,
        _sentence_transformer_factory,
        "pretrained sentence-transformers backbone, full or frozen + linear head (extra: st)",
        state_shapes=sentence_state_shapes,
    )
    register_alias("minilm", "sentence-transformer", model="all-MiniLM-L6-v2")
    mark_builtin()


_register_builtins()

__all__ = [
    "CachingEncoder",
    "EmbeddingCache",
    "EmbeddingCacheConfig",
    "cache_config",
    "default_cache_dir",
    "evict",
    "model_key",
    "parse_size",
    "with_embedding_cache",
    "CachedFeatureEncoder",
    "FeatureTable",
    "backbone_key",
    "feature_table",
    "is_frozen_backbone",
    "parse_scalar",
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_VERSION",
    "DEFAULT_ENCODER",
    "Encoder",
    "EncoderModule",
    "Role",
    "HashedNgramModule",
    "HashedNgramParams",
    "build_encoder",
    "encoder_kinds",
    "expected_state_shapes",
    "load_encoder",
    "export_sentence_transformer",
    "EXPORT_INFO",
    "normalize_spec",
    "parse_spec",
    "read_checkpoint",
    "register_alias",
    "register_encoder",
    "EncoderKind",
    "adopt_kinds",
    "plugin_kinds",
    "resolve_device",
    "save_checkpoint",
    "spec_to_string",
]
