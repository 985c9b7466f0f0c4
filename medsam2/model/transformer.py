"""Two-way transformer of the SAM mask decoder.

Prompt tokens ("queries") and image-embedding tokens ("keys") update each other: every
block runs token self-attention, token-to-image cross-attention, a token MLP and
image-to-token cross-attention, each followed by a residual add and LayerNorm (post-norm).
A final token-to-image attention closes the stack.  Parameter names match the
`sam_mask_decoder.transformer.*` entries of SAM 2 checkpoints.
"""

from __future__ import annotations

from torch import Tensor, nn

from medsam2.model.common import MLP, Attention

__all__ = ["TwoWayAttentionBlock", "TwoWayTransformer"]


class TwoWayAttentionBlock(nn.Module):
    """One two-way block.

    Args:
        embedding_dim: token width C.
        num_heads: attention heads (must divide C / attention_downsample_rate).
        mlp_dim: hidden width of the 2-layer ReLU token MLP.
        attention_downsample_rate: inner-width reduction of both cross-attentions.
        skip_first_layer_pe: first block only: self-attention sees the raw tokens (no query
            position encoding) and its output *replaces* the tokens instead of being added.
    """

    def __init__(
        self,
        embedding_dim: int,
        num_heads: int,
        mlp_dim: int = 2048,
        attention_downsample_rate: int = 2,
        skip_first_layer_pe: bool = False,
    ) -> None:
        super().__init__()
        self.self_attn = Attention(embedding_dim, num_heads)
        self.norm1 = nn.LayerNorm(embedding_dim)
        self.cross_attn_token_to_image = Attention(
            embedding_dim, num_heads, downsample_rate=attention_downsample_rate
        )
        self.norm2 = nn.LayerNorm(embedding_dim)
        self.mlp = MLP(embedding_dim, mlp_dim, embedding_dim, num_layers=2)
        self.norm3 = nn.LayerNorm(embedding_dim)
        self.norm4 = nn.LayerNorm(embedding_dim)
        self.cross_attn_image_to_token = Attention(
            embedding_dim, num_heads, downsample_rate=attention_downsample_rate
        )
        self.skip_first_layer_pe = skip_first_layer_pe

    def forward(
        self, queries: Tensor, keys: Tensor, query_pe: Tensor, key_pe: Tensor
    ) -> tuple[Tensor, Tensor]:
        """queries, query_pe: (B, N, C); keys, key_pe: (B, HW, C) -> updated (queries, keys)."""
        if self.skip_first_layer_pe:
            queries = self.self_attn(queries, queries, queries)
        else:
            q = queries + query_pe
            queries = queries + self.self_attn(q, q, queries)
        queries = self.norm1(queries)

        keys_pos = keys + key_pe
        queries = self.norm2(queries + self.cross_attn_token_to_image(queries + query_pe, keys_pos, keys))
        queries = self.norm3(queries + self.mlp(queries))

        # image tokens query the prompt tokens
        keys = self.norm4(keys + self.cross_attn_image_to_token(keys_pos, queries + query_pe, queries))
        return queries, keys


class TwoWayTransformer(nn.Module):
    """Stack of `depth` :class:`TwoWayAttentionBlock` plus a final token-to-image attention.

    Args:
        depth: number of blocks.
        embedding_dim: token width C.
        num_heads: attention heads.
        mlp_dim: hidden width of each block's token MLP.
        attention_downsample_rate: inner-width reduction of the cross-attentions.
    """

    def __init__(
        self,
        depth: int,
        embedding_dim: int,
        num_heads: int,
        mlp_dim: int,
        attention_downsample_rate: int = 2,
    ) -> None:
        super().__init__()
        self.depth = depth
        self.embedding_dim = embedding_dim
        self.num_heads = num_heads
        self.mlp_dim = mlp_dim
        self.layers = nn.ModuleList(
            TwoWayAttentionBlock(
                embedding_dim,
                num_heads,
                mlp_dim=mlp_dim,
                attention_downsample_rate=attention_downsample_rate,
                skip_first_layer_pe=index == 0,
            )
            for index in range(depth)
        )
        self.final_attn_token_to_image = Attention(
            embedding_dim, num_heads, downsample_rate=attention_downsample_rate
        )
        self.norm_final_attn = nn.LayerNorm(embedding_dim)

    def forward(
        self, image_embedding: Tensor, image_pe: Tensor, point_embedding: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Run the two-way stack.

        Args:
            image_embedding: (B, C, h, w).
            image_pe: (B, C, h, w) position encoding of the image tokens.
            point_embedding: (B, N, C) prompt / output tokens; also used as their position
                encoding in every attention.

        Returns:
            queries (B, N, C) and image tokens (B, h*w, C).
        """
        keys = image_embedding.flatten(2).transpose(1, 2)
        key_pe = image_pe.flatten(2).transpose(1, 2)
        queries = point_embedding
        for layer in self.layers:
            queries, keys = layer(queries, keys, point_embedding, key_pe)
        attn = self.final_attn_token_to_image(queries + point_embedding, keys + key_pe, keys)
        queries = self.norm_final_attn(queries + attn)
        return queries, keys
