"""Phones that send audio: SIPp's ``rtp_stream`` plays a tone while an agent talks, so a
recording (MixMonitor) has something to record — SIPp phones are otherwise silent, and
Asterisk writes no frames for silence it never received.

``talking_agent_scenario(dir)`` writes a one-second μ-law tone and a copy of
``agent_answer.xml`` that streams it (looped) from the answer on; use it as an
``AgentPlan`` scenario (give ``talk_min``/``talk_max`` in its variables).
"""

from __future__ import annotations

import math
from pathlib import Path

from harness.sipp import SCENARIO_DIR

_ACK = '''  <recv request="ACK" rtd="true" crlf="true">
    <action>
      <log message="[timestamp]|answered|[$agent]|[$caller]|[call_id]"/>
    </action>
  </recv>
'''


def _ulaw(sample: int) -> int:
    """G.711 μ-law encoding of one 16-bit sample."""
    bias, clip = 0x84, 32635
    sign = 0x80 if sample < 0 else 0
    sample = min(abs(sample), clip) + bias
    exponent = 7
    mask = 0x4000
    while exponent > 0 and not sample & mask:
        exponent -= 1
        mask >>= 1
    mantissa = (sample >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


def tone(path: Path, seconds: float = 1.0, hz: float = 440.0) -> Path:
    rate = 8000
    data = bytes(_ulaw(int(8000 * math.sin(2 * math.pi * hz * i / rate)))
                 for i in range(int(rate * seconds)))
    path.write_bytes(data)
    return path


def talking_agent_scenario(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    audio = tone(directory / "tone.ulaw")
    text = (SCENARIO_DIR / "agent_answer.xml").read_text(encoding="iso-8859-1")
    if _ACK not in text:
        raise RuntimeError("agent_answer.xml changed: its ACK step is not where expected")
    stream = f'  <nop><action><exec rtp_stream="{audio},-1,0"/></action></nop>\n'
    out = directory / "agent_answer_media.xml"
    out.write_text(text.replace(_ACK, _ACK + stream).replace(
        '<scenario name="agent answers">', '<scenario name="agent answers and talks">'),
        encoding="iso-8859-1")
    return out
