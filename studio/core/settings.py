"""How a comparison run measures: thresholds, top-k depth, timing, and the language-model knobs."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from studio.core.measure import TimingPlan


class RunSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    agreement_threshold: float = Field(0.90, ge=0.0, le=1.0)
    top_k: int = Field(5, ge=1, le=50)
    timing: TimingPlan = Field(default_factory=TimingPlan)
    eval_batch_size: int = Field(16, ge=1)
    # Causal language models.
    kl_top_k: int = Field(32, ge=8, le=256, description="reference log-probabilities kept per token for KLD")
    new_tokens: int = Field(32, ge=1, le=512, description="greedy continuation length per prompt")
    decode_tokens: int = Field(128, ge=8, le=4096, description="tokens decoded per timing round")
    decode_rounds: int = Field(3, ge=1, le=50, description="timed decode rounds (batch 1)")
    prompt_limit: int = Field(0, ge=0, description="prompts shown side by side; 0 = all")
