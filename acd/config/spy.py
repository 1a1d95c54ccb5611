"""The Asterisk side of listen / whisper / barge (issue 13.4), rendered from
``supervision`` — kept apart from the engine's own AMI account and dialplan:

* ``manager_spy_acd.conf`` — a **separate AMI account** (``supervision.ami.username``)
  that may write only ``originate`` and read nothing; the shipped ``manager.conf``
  ``#tryinclude``-s it. The engine's account is untouched (still no ``originate``).
* ``[acd-spy]`` in ``extensions_acd.conf`` — the **only** place that account's
  Originate can send a supervisor's phone: ``listen``, ``whisper``, ``barge``, each a
  ``ChanSpy`` of the channel named by ``ACD_SPY_TARGET``, refused unless that is an
  agent's PJSIP channel prefix. No phone's context includes it.
* the supervisors' phones in ``pjsip_acd.conf`` (context ``[acd-supervisors]``: a
  supervisor's phone dials nothing through the hotline).
"""

from __future__ import annotations

from collections.abc import Mapping

from acd.config.errors import ConfigError
from acd.config.schema import Config, SupervisorConfig

#: Mode → ChanSpy options: q quiet (no beep, no name), E end when the spied channel
#: hangs up; w whisper (the agent hears the supervisor, the caller does not); B barge
#: (both hear the supervisor).
SPY_OPTIONS: Mapping[str, str] = {"listen": "qE", "whisper": "qEw", "barge": "qEB"}


def enabled(config: Config) -> bool:
    return any(s.endpoint for s in config.supervisors)


def default_permit(config: Config) -> str:
    """Who may log in with the spy account: the engine's address (as for its own)."""
    host = config.fastagi.host
    try:
        import ipaddress

        ip = ipaddress.ip_address(host)
    except ValueError:
        return "127.0.0.1/255.255.255.255"
    if ip.is_unspecified or ip.is_loopback:
        return "127.0.0.1/255.255.255.255"
    return f"{host}/255.255.255.255"


def manager_account(config: Config, environ: Mapping[str, str], permit: str) -> str:
    sup = config.supervision
    assert sup is not None
    secret = environ.get(sup.ami.secret_env, "")
    if not secret:
        raise ConfigError([f"environment: {sup.ami.secret_env} is not set (AMI secret of "
                           f"the listen/whisper/barge account {sup.ami.username!r})"])
    return "\n".join([
        "; Listen / whisper / barge: a separate AMI account. It can Originate and nothing",
        "; else (no read classes: it needs no events), and [acd-spy] limits where an",
        "; Originate goes. The engine's own account cannot originate at all.",
        f"[{sup.ami.username}]",
        f"secret = {secret}",
        "deny = 0.0.0.0/0.0.0.0",
        f"permit = {permit}",
        "writetimeout = 1000",
        "read =",
        "write = originate",
        "",
    ])


def supervisor_endpoint(s: SupervisorConfig, language: str,
                        environ: Mapping[str, str]) -> str:
    ep = s.endpoint
    lines = [f"; supervisor {s.id}" + (f" ({s.name})" if s.name else ""), f"[{ep}]",
             "type=endpoint", "context=acd-supervisors", "disallow=all", "allow=alaw,ulaw",
             "direct_media=no", "rtp_symmetric=yes", "force_rport=yes",
             "rewrite_contact=yes", "dtmf_mode=rfc4733", f"aors={ep}",
             f'callerid="监听 {s.name or s.id}" <{ep}>', f"language={language}"]
    if s.contact is None:
        password = environ.get(s.password_env or "", "")
        if not password:
            raise ConfigError([f"environment: {s.password_env} is not set (SIP password "
                               f"of supervisor {s.id})"])
        lines += [f"auth={ep}-auth", "", f"[{ep}-auth]", "type=auth",
                  "auth_type=userpass", f"username={ep}", f"password={password}",
                  "", f"[{ep}]", "type=aor", "max_contacts=1", "remove_existing=yes"]
    else:
        lines += ["", f"[{ep}]", "type=aor", f"contact={s.contact}",
                  "qualify_frequency=0"]
    return "\n".join(lines) + "\n"


def spy_context() -> str:
    lines = [
        "; Listen / whisper / barge: reached only by the supervision AMI account's",
        "; Originate (no phone includes it). ACD_SPY_TARGET: PJSIP/<agent endpoint>-",
        "[acd-supervisors]",
        "exten => _X.,1,Hangup(21)",
        "exten => s,1,Hangup(21)",
        "",
        "[acd-spy]",
    ]
    for mode, options in SPY_OPTIONS.items():
        lines += [
            f'exten => {mode},1,ExecIf($["${{REGEX("^PJSIP/[A-Za-z0-9_.:-]+-$" '
            '${ACD_SPY_TARGET})}" != "1"]?Hangup(21))',
            " same => n,Answer()",
            f" same => n,ChanSpy(${{ACD_SPY_TARGET}},{options})",
            " same => n,Hangup()",
        ]
    return "\n".join(lines) + "\n"
