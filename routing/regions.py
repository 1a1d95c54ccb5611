"""Caller region (province, ISO 3166-2:CN) from the caller number — spec §4 "region".

Groundwork for shared-partner routing: a partner site covers a set of provinces, and a
call reaches "the partner sites covering the caller's region" by the code resolved here.

Precedence, first that yields a region wins:

1. ``override`` — a per-number assignment (normalised number → region) from config;
2. ``ivr``      — an area code the caller keyed in the IVR (``"0755"`` or ``"755"``);
3. ``lookup``   — the number's home province from the ``phonenumbers`` geocoder: the
   registration province of a mobile number segment (``1380013…`` → Beijing) or the
   area code of a landline (``0755…`` → Shenzhen, Guangdong); ``+852`` / ``+853`` /
   ``+886`` → CN-HK / CN-MO / CN-TW;
4. ``default``  — the configured default region (``known=False``): withheld numbers,
   foreign numbers, short/service numbers (``10086``, ``95555``, ``400…``), local numbers
   without an area code, number ranges the geocoder has no province for, garbage.

Pure: no I/O beyond the data the ``phonenumbers`` package ships, no clock, no asyncio.
Never raises on a caller number or IVR input, whatever the text; raises ``ValueError``
only for a bad *configuration* value (region code that :func:`is_region_code` rejects,
override keys that are not numbers) so that config loading reports it.

Cost: importing the geocoder data loads every country's prefix tables — about 0.25 s and
~100 MB RSS, once per process. It is imported lazily on the first lookup; a server calls
:func:`preload` at start-up so that the first caller does not pay for it. One uncached
lookup is ~20 µs; lookups are cached per normalised number (:func:`lookup_region`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from types import MappingProxyType
from typing import Final, Literal

import phonenumbers

from routing.numbers import fold_digits, normalise_number

__all__ = [
    "REGION_CODES",
    "REGION_NAMES",
    "UNKNOWN_REGION",
    "RegionResolver",
    "RegionResult",
    "RegionSource",
    "is_region_code",
    "lookup_region",
    "preload",
    "region_for_area_code",
    "region_for_description",
    "resolve_region",
    "validate_region_code",
]

#: Default region for callers whose province is not known. Not an ISO 3166-2 code (none
#: exists for "unknown"); a site covering explicit regions never covers it.
UNKNOWN_REGION: Final = "CN-UNKNOWN"

#: The 34 provincial-level divisions: code → (English name, Chinese short name).
REGION_NAMES: Final[Mapping[str, tuple[str, str]]] = MappingProxyType({
    "CN-BJ": ("Beijing", "北京"),
    "CN-TJ": ("Tianjin", "天津"),
    "CN-HE": ("Hebei", "河北"),
    "CN-SX": ("Shanxi", "山西"),
    "CN-NM": ("Inner Mongolia", "内蒙古"),
    "CN-LN": ("Liaoning", "辽宁"),
    "CN-JL": ("Jilin", "吉林"),
    "CN-HL": ("Heilongjiang", "黑龙江"),
    "CN-SH": ("Shanghai", "上海"),
    "CN-JS": ("Jiangsu", "江苏"),
    "CN-ZJ": ("Zhejiang", "浙江"),
    "CN-AH": ("Anhui", "安徽"),
    "CN-FJ": ("Fujian", "福建"),
    "CN-JX": ("Jiangxi", "江西"),
    "CN-SD": ("Shandong", "山东"),
    "CN-HA": ("Henan", "河南"),
    "CN-HB": ("Hubei", "湖北"),
    "CN-HN": ("Hunan", "湖南"),
    "CN-GD": ("Guangdong", "广东"),
    "CN-GX": ("Guangxi", "广西"),
    "CN-HI": ("Hainan", "海南"),
    "CN-CQ": ("Chongqing", "重庆"),
    "CN-SC": ("Sichuan", "四川"),
    "CN-GZ": ("Guizhou", "贵州"),
    "CN-YN": ("Yunnan", "云南"),
    "CN-XZ": ("Tibet", "西藏"),
    "CN-SN": ("Shaanxi", "陕西"),
    "CN-GS": ("Gansu", "甘肃"),
    "CN-QH": ("Qinghai", "青海"),
    "CN-NX": ("Ningxia", "宁夏"),
    "CN-XJ": ("Xinjiang", "新疆"),
    "CN-TW": ("Taiwan", "台湾"),
    "CN-HK": ("Hong Kong", "香港"),
    "CN-MO": ("Macao", "澳门"),
})

REGION_CODES: Final[frozenset[str]] = frozenset(REGION_NAMES)

RegionSource = Literal["override", "ivr", "lookup", "default"]

_NO_OVERRIDES: Final[Mapping[str, str]] = MappingProxyType({})


def is_region_code(code: str) -> bool:
    """One of the 34 ISO 3166-2:CN provincial codes (exact, upper case) or
    :data:`UNKNOWN_REGION`."""
    return code in REGION_CODES or code == UNKNOWN_REGION


def validate_region_code(code: str, what: str = "region") -> str:
    """``code`` if :func:`is_region_code`, else ``ValueError`` naming ``what``."""
    if not isinstance(code, str) or not is_region_code(code):
        raise ValueError(
            f"{what}: {code!r} is not an ISO 3166-2:CN province code (CN-GD, CN-BJ …) "
            f"or {UNKNOWN_REGION}"
        )
    return code


@dataclass(frozen=True, slots=True)
class RegionResult:
    #: ISO 3166-2:CN code (``CN-GD``) or the configured default.
    region: str
    #: Which rule decided: ``override`` > ``ivr`` > ``lookup`` > ``default``.
    source: RegionSource
    #: ``False`` exactly when the default was used (or an override assigned UNKNOWN).
    known: bool
    #: The caller number as :func:`routing.segments.normalise_number` gives it (after
    #: folding full-width digits), the key for overrides; ``""`` when withheld.
    normalised: str
    #: For logs: what the geocoder said (``"Shenzhen, Guangdong"``, ``"China"`` for a
    #: range without a province, ``"foreign +1"``) or the IVR area code that decided.
    detail: str = ""


# --- the geocoder's descriptions → region codes ---------------------------------------


def _key(name: str) -> str:
    """Case/punctuation-insensitive key: ``"Xi'an"``, ``"XiAn"`` → ``"xian"``."""
    return "".join(ch for ch in name.casefold() if ch.isalnum())


_PROVINCE_BY_EN: Final[Mapping[str, str]] = MappingProxyType({
    **{_key(en): code for code, (en, _zh) in REGION_NAMES.items()},
    # other spellings of the same divisions
    "neimongol": "CN-NM", "neimenggu": "CN-NM", "xizang": "CN-XZ", "macau": "CN-MO",
    "hongkongsar": "CN-HK", "macaosar": "CN-MO", "macausar": "CN-MO",
})

#: City → province, for a description that names only a city (the installed data names a
#: province after every city except the four municipalities, which are provinces
#: themselves; this table keeps big cities resolvable if a data release drops the
#: province part). Ambiguous names are left out: Fuzhou (Fujian 福州 / Jiangxi 抚州),
#: Suzhou (Jiangsu 苏州 / Anhui 宿州), Taizhou (Jiangsu 泰州 / Zhejiang 台州).
_PROVINCE_BY_CITY: Final[Mapping[str, str]] = MappingProxyType({
    _key(city): code
    for code, cities in {
        "CN-GD": ("Guangzhou", "Shenzhen", "Dongguan", "Foshan", "Zhuhai", "Shantou",
                  "Huizhou", "Zhongshan", "Jiangmen", "Zhanjiang"),
        "CN-ZJ": ("Hangzhou", "Ningbo", "Wenzhou", "Shaoxing", "Jiaxing", "Jinhua"),
        "CN-JS": ("Nanjing", "Wuxi", "Changzhou", "Nantong", "Xuzhou", "Yangzhou"),
        "CN-SC": ("Chengdu", "Mianyang", "Zigong"),
        "CN-HB": ("Wuhan", "Yichang", "Xiangyang"),
        "CN-SN": ("Xi'an", "Xianyang", "Baoji"),
        "CN-HN": ("Changsha", "Zhuzhou", "Xiangtan", "Hengyang"),
        "CN-SD": ("Jinan", "Qingdao", "Yantai", "Weifang", "Zibo"),
        "CN-HI": ("Haikou", "Sanya"),
        "CN-XJ": ("Urumqi", "Urumchi", "Karamay"),
        "CN-XZ": ("Lhasa",),
        "CN-YN": ("Kunming",),
        "CN-GZ": ("Guiyang", "Zunyi"),
        "CN-GX": ("Nanning", "Guilin", "Liuzhou"),
        "CN-GS": ("Lanzhou",),
        "CN-QH": ("Xining",),
        "CN-NX": ("Yinchuan",),
        "CN-NM": ("Hohhot", "Huhehaote", "Baotou", "Ordos"),
        "CN-LN": ("Shenyang", "Dalian", "Anshan"),
        "CN-JL": ("Changchun",),
        "CN-HL": ("Harbin", "Daqing", "Qiqihar"),
        "CN-HE": ("Shijiazhuang", "Tangshan", "Baoding", "Handan"),
        "CN-SX": ("Taiyuan", "Datong"),
        "CN-AH": ("Hefei", "Wuhu"),
        "CN-FJ": ("Xiamen", "Quanzhou"),
        "CN-JX": ("Nanchang", "Ganzhou", "Jiujiang"),
        "CN-HA": ("Zhengzhou", "Luoyang", "Kaifeng"),
        "CN-TW": ("Taipei", "Kaohsiung", "Taichung", "Tainan"),
    }.items()
    for city in cities
})

#: Chinese descriptions start with the province (``"广东省深圳市"``, ``"广西南宁市"``,
#: ``"北京市"``); longest name first so that no name shadows a longer one.
_PROVINCE_BY_ZH: Final[tuple[tuple[str, str], ...]] = tuple(
    sorted(((zh, code) for code, (_en, zh) in REGION_NAMES.items()),
           key=lambda item: -len(item[0]))
)


def region_for_description(description: str) -> str | None:
    """Province code for a geocoder description, English or Chinese:
    ``"Shenzhen, Guangdong"``, ``"Chengdu/Ziyang/Meishan, Sichuan"``, ``"Beijing"``,
    ``"Guangzhou"``, ``"广东省深圳市"``. ``None`` when it names no province (``"China"``,
    ``""``, another country's place)."""
    text = description.strip()
    if not text:
        return None
    for zh, zh_code in _PROVINCE_BY_ZH:
        if text.startswith(zh):
            return zh_code
    province = text.rsplit(",", 1)[-1]
    code = _PROVINCE_BY_EN.get(_key(province))
    if code is not None:
        return code
    if "," in text:  # "City, <not a Chinese province>": another country
        return None
    for city in text.split("/"):
        code = _PROVINCE_BY_EN.get(_key(city)) or _PROVINCE_BY_CITY.get(_key(city))
        if code is not None:
            return code
    return None


# --- numbers ---------------------------------------------------------------------------

_MOBILE = re.compile(r"1[3-9]\d{9}")
#: Trunk 0 + area code (10, 2x, or 3 digits from 3xx–9xx) + 7–8 digit local number.
_LANDLINE = re.compile(r"0(?:10|2\d|[3-9]\d\d)\d{7,8}")
#: ``86`` + a landline without its trunk 0 (caller ID sent as E.164 without the plus).
_BARE_86_LANDLINE = re.compile(r"86((?:10|2\d|[3-9]\d\d)\d{7,8})")
#: ``+86 10 …`` comes out of ``normalise_number`` as ``10…`` (it keeps the national form
#: of anything starting with 1 as if it were a mobile): a Beijing landline without its 0.
_BEIJING_NO_TRUNK = re.compile(r"10\d{8}")
_AREA_CODE = re.compile(r"0?(10|2\d|[3-9]\d\d)")
_GREATER_CHINA: Final[Mapping[str, str]] = MappingProxyType(
    {"HK": "CN-HK", "MO": "CN-MO", "TW": "CN-TW"}
)


def preload() -> None:
    """Import the geocoder's data now (~0.25 s, ~100 MB) rather than on the first call."""
    from phonenumbers import geocoder  # noqa: F401


def _describe(number: phonenumbers.PhoneNumber, *, valid_only: bool) -> str:
    from phonenumbers import geocoder

    if valid_only:
        return geocoder.description_for_number(number, "en")
    return geocoder.description_for_valid_number(number, "en")


def _lookup_cn(national: str) -> tuple[str | None, str]:
    """Region for a Chinese number in national form (``138…`` / ``0755…``)."""
    try:
        number = phonenumbers.parse(national, "CN")
    except phonenumbers.NumberParseException:
        return None, ""
    if _MOBILE.fullmatch(national):
        # Mobile: the segment table is only trusted for numbers valid per the metadata.
        description = _describe(number, valid_only=True)
    else:
        # Landline: area codes are stable, local-number plans less so (the metadata
        # rejects e.g. 8-digit Taiyuan numbers), so a well-formed number (checked by
        # _LANDLINE) is geocoded by its area code whether or not the metadata calls it valid.
        description = _describe(number, valid_only=False)
    if not description:
        return None, ""
    return region_for_description(description), description


def _lookup_international(digits: str) -> tuple[str | None, str]:
    """``00`` + country code …: Hong Kong, Macao, Taiwan map to their CN-* codes."""
    if len(digits) > 17:
        return None, ""
    try:
        number = phonenumbers.parse("+" + digits, None)
    except phonenumbers.NumberParseException:
        return None, ""
    if not phonenumbers.is_possible_number(number):
        return None, ""
    country_code = number.country_code or 0
    code = _GREATER_CHINA.get(phonenumbers.region_code_for_country_code(country_code))
    if code is None:
        return None, f"foreign +{country_code}"
    return code, _describe(number, valid_only=False)


@lru_cache(maxsize=65536)
def lookup_region(normalised: str) -> tuple[str | None, str]:
    """``(region, geocoder description)`` for a normalised number; region ``None`` when
    the number has no known province. Cached: the geocoder costs ~20 µs a lookup."""
    if _MOBILE.fullmatch(normalised) or _LANDLINE.fullmatch(normalised):
        return _lookup_cn(normalised)
    if normalised.startswith("00"):
        return _lookup_international(normalised[2:])
    bare = _BARE_86_LANDLINE.fullmatch(normalised)
    if bare is not None:
        return _lookup_cn("0" + bare.group(1))
    if _BEIJING_NO_TRUNK.fullmatch(normalised):
        return _lookup_cn("0" + normalised)
    return None, ""


def region_for_area_code(area_code: str) -> str | None:
    """Province of a Chinese area code keyed in the IVR: ``"0755"``, ``"755"``, ``"010"``,
    ``"10"``, ``"020#"`` → code; ``None`` for anything that is not a known area code."""
    digits = "".join(ch for ch in fold_digits(area_code) if "0" <= ch <= "9")
    match = _AREA_CODE.fullmatch(digits)
    if match is None:
        return None
    area = match.group(1)
    # A well-formed number in that area: the geocoder matches on its leading digits.
    return lookup_region("0" + area + "2" * (8 if len(area) == 2 else 7))[0]


# --- resolution ------------------------------------------------------------------------


def _normalise(raw: str) -> str:
    return normalise_number(raw)


def resolve_region(
    raw_number: str,
    *,
    default: str = UNKNOWN_REGION,
    overrides: Mapping[str, str] = _NO_OVERRIDES,
    ivr_area_code: str | None = None,
) -> RegionResult:
    """Region of a caller (see the module docstring for the precedence).

    ``overrides`` is keyed by *normalised* number (as in :attr:`RegionResult.normalised`;
    :class:`RegionResolver` normalises and validates a config table once). ``default`` and
    a matching override must pass :func:`is_region_code` (else ``ValueError``); the caller
    number and IVR input never make this raise.
    """
    validate_region_code(default, "default region")
    normalised = _normalise(raw_number) if isinstance(raw_number, str) else ""
    if normalised and overrides:
        region = overrides.get(normalised)
        if region is not None:
            validate_region_code(region, f"region override for {normalised}")
            return RegionResult(region, "override", region != UNKNOWN_REGION, normalised)
    if ivr_area_code:
        region = region_for_area_code(ivr_area_code)
        if region is not None:
            return RegionResult(region, "ivr", True, normalised, ivr_area_code)
    description = ""
    if normalised:
        region, description = lookup_region(normalised)
        if region is not None:
            return RegionResult(region, "lookup", True, normalised, description)
    return RegionResult(default, "default", False, normalised, description)


class RegionResolver:
    """A default region and an override table, validated and normalised once (at config
    load), then :meth:`resolve` per call."""

    __slots__ = ("default", "overrides")

    def __init__(self, default: str = UNKNOWN_REGION,
                 overrides: Mapping[str, str] = _NO_OVERRIDES) -> None:
        self.default = validate_region_code(default, "default region")
        table: dict[str, str] = {}
        for raw, region in overrides.items():
            validate_region_code(region, f"region override for {raw!r}")
            number = _normalise(raw) if isinstance(raw, str) else ""
            if not number:
                raise ValueError(f"region override key {raw!r} is not a phone number")
            if table.get(number, region) != region:
                raise ValueError(
                    f"region override key {raw!r} is {number}, already mapped to "
                    f"{table[number]} (not {region})"
                )
            table[number] = region
        self.overrides: Mapping[str, str] = MappingProxyType(table)

    def resolve(self, raw_number: str, ivr_area_code: str | None = None) -> RegionResult:
        return resolve_region(raw_number, default=self.default, overrides=self.overrides,
                              ivr_area_code=ivr_area_code)
