"""Caller region resolution (routing.regions): geocoder lookup, normalisation, precedence.

The sample numbers were checked against the installed ``phonenumbers`` (9.0.43) geocoder;
the comment on each gives what it answered in English.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from routing.regions import (
    REGION_CODES,
    REGION_NAMES,
    UNKNOWN_REGION,
    RegionResolver,
    is_region_code,
    lookup_region,
    preload,
    region_for_area_code,
    region_for_description,
    resolve_region,
)

MOBILES = [
    ("13800138000", "CN-BJ"),  # Beijing
    ("13200000000", "CN-SH"),  # Shanghai
    ("13512345678", "CN-CQ"),  # Chongqing
    ("13712345678", "CN-GD"),  # Dongguan, Guangdong
    ("13912345678", "CN-JS"),  # Changzhou, Jiangsu
    ("13588888888", "CN-ZJ"),  # Hangzhou, Zhejiang
    ("15012345678", "CN-YN"),  # Zhaotong, Yunnan
    ("13900000000", "CN-XJ"),  # Urumchi, Xinjiang
    ("13700000000", "CN-LN"),  # Shenyang, Liaoning
    ("13300000000", "CN-GX"),  # Nanning, Guangxi
    ("13000000000", "CN-SD"),  # Jinan, Shandong
    ("13100000000", "CN-SX"),  # Taiyuan, Shanxi
    ("13833333333", "CN-HE"),  # Zhangjiakou, Hebei
    ("13844444444", "CN-JL"),  # Siping, Jilin
    ("13866666666", "CN-AH"),  # Hefei, Anhui
    ("13788888888", "CN-FJ"),  # Fuzhou, Fujian
]

LANDLINES = [
    ("01012345678", "CN-BJ"),  # Beijing
    ("02212345678", "CN-TJ"),  # Tianjin
    ("02112345678", "CN-SH"),  # Shanghai
    ("02312345678", "CN-CQ"),  # Chongqing
    ("02012345678", "CN-GD"),  # Guangzhou, Guangdong
    ("075512345678", "CN-GD"),  # Shenzhen, Guangdong
    ("057112345678", "CN-ZJ"),  # Hangzhou, Zhejiang
    ("02812345678", "CN-SC"),  # Chengdu/Ziyang/Meishan, Sichuan
    ("02712345678", "CN-HB"),  # Wuhan, Hubei
    ("02912345678", "CN-SN"),  # XiAn/Xianyang, Shaanxi
    ("073112345678", "CN-HN"),  # Zhuzhou/Changsha/Xiangtan, Hunan
    ("02512345678", "CN-JS"),  # Nanjing, Jiangsu
    ("053212345678", "CN-SD"),  # Qingdao, Shandong
    ("089812345678", "CN-HI"),  # Haikou, Hainan
    ("09914567890", "CN-XJ"),  # Urumqi, Xinjiang
    ("02412345678", "CN-LN"),  # Shenyang/Tieling/Fushun, Liaoning
    ("043112345678", "CN-JL"),  # Changchun, Jilin
    ("045112345678", "CN-HL"),  # Harbin, Heilongjiang
    ("031112345678", "CN-HE"),  # Shijiazhuang, Hebei
    ("03514567890", "CN-SX"),  # Taiyuan, Shanxi
    ("055112345678", "CN-AH"),  # Hefei/Chaohu, Anhui
    ("059112345678", "CN-FJ"),  # Fuzhou, Fujian
    ("079112345678", "CN-JX"),  # Nanchang, Jiangxi
    ("037112345678", "CN-HA"),  # Zhengzhou, Henan
    ("07715678901", "CN-GX"),  # Nanning/Chongzuo, Guangxi
    ("085112345678", "CN-GZ"),  # Guiyang/Zunyi/Anshun, Guizhou
    ("087112345678", "CN-YN"),  # Kunming, Yunnan
    ("08916812345", "CN-XZ"),  # Lhasa, Tibet
    ("09318812345", "CN-GS"),  # Lanzhou, Gansu
    ("09718812345", "CN-QH"),  # Xining, Qinghai
    ("09515012345", "CN-NX"),  # Yinchuan, Ningxia
    ("04716612345", "CN-NM"),  # Huhehaote, Inner Mongolia
]

GREATER_CHINA = [
    ("+852 9123 4567", "CN-HK"),  # Hong Kong
    ("00853 6612 3456", "CN-MO"),  # Macao
    ("+886 2 2345 6789", "CN-TW"),  # Taipei
]


@pytest.mark.parametrize(("number", "region"), MOBILES + LANDLINES + GREATER_CHINA)
def test_lookup_by_mobile_segment_and_area_code(number: str, region: str) -> None:
    result = resolve_region(number)
    assert (result.region, result.source, result.known) == (region, "lookup", True)
    assert result.detail  # the geocoder's description, for logs


def test_samples_cover_every_mainland_province() -> None:
    mainland = REGION_CODES - {"CN-HK", "CN-MO", "CN-TW"}
    assert {r for _, r in LANDLINES} == mainland
    assert len({r for _, r in MOBILES}) >= 10


@pytest.mark.parametrize(
    ("raw", "normalised", "region"),
    [
        ("13800138000", "13800138000", "CN-BJ"),
        ("+86 138-0013-8000", "13800138000", "CN-BJ"),
        ("+8613800138000", "13800138000", "CN-BJ"),
        ("008613800138000", "13800138000", "CN-BJ"),
        ("8613800138000", "13800138000", "CN-BJ"),
        ("  138 0013 8000 ", "13800138000", "CN-BJ"),
        ("0755-1234-5678", "075512345678", "CN-GD"),
        ("(0755) 1234 5678", "075512345678", "CN-GD"),
        ("+86 755 1234 5678", "075512345678", "CN-GD"),
        ("0086 755 12345678", "075512345678", "CN-GD"),
        # Beijing's trunk 0 is kept: only an 11-digit number starting with 1 is a mobile
        ("+86 10 1234 5678", "01012345678", "CN-BJ"),
        ("0086 10 1234 5678", "01012345678", "CN-BJ"),
        ("+86 20 1234 5678", "02012345678", "CN-GD"),
        # E.164 without the plus: normalised as the segment lists do, looked up as 0755…
        ("8675512345678", "8675512345678", "CN-GD"),
        # full-width digits and plus, as some Chinese input methods produce
        ("＋８６ １３８ ００１３ ８０００", "13800138000", "CN-BJ"),
        ("sip:+8613800138000@trunk.example", "13800138000", "CN-BJ"),
    ],
)
def test_normalisation(raw: str, normalised: str, region: str) -> None:
    result = resolve_region(raw)
    assert (result.normalised, result.region, result.source) == (normalised, region, "lookup")


@pytest.mark.parametrize(
    "raw",
    [
        "", "   ", "anonymous", "Anonymous", "unknown", "Restricted", "withheld",
        "<sip:anonymous@anonymous.invalid>",
        "+1 202 555 0123", "0012025550123", "+44 20 7946 0958", "+81 3-1234-5678",
        "10086", "95555", "110", "4001234567", "8008101234",  # service / non-geographic
        "12345678",  # local number without an area code
        "19912345678", "17012345678",  # mobile ranges the geocoder has no province for
        "12345678901",  # not a mobile range
        "0123456789", "026 12345678",  # no such area code
        "075512", "0755123456789012",  # too short / too long
        "abc", "+", "00", "0" * 40, "9" * 200, "☎️", "NaN",
    ],
)
def test_withheld_foreign_and_garbage_get_the_default(raw: str) -> None:
    result = resolve_region(raw)
    assert (result.region, result.source, result.known) == (UNKNOWN_REGION, "default", False)
    configured = resolve_region(raw, default="CN-GD")
    assert (configured.region, configured.source, configured.known) == ("CN-GD", "default",
                                                                        False)


def test_default_keeps_what_the_geocoder_said() -> None:
    assert resolve_region("19912345678").detail == "China"
    assert resolve_region("+1 202 555 0123").detail == "foreign +1"


@pytest.mark.parametrize(
    ("area", "region"),
    [("0755", "CN-GD"), ("755", "CN-GD"), ("010", "CN-BJ"), ("10", "CN-BJ"),
     ("020", "CN-GD"), ("21", "CN-SH"), ("0571", "CN-ZJ"), ("0991", "CN-XJ"),
     ("0898#", "CN-HI"), (" 028 ", "CN-SC"), ("０５３２", "CN-SD")],
)
def test_area_codes(area: str, region: str) -> None:
    assert region_for_area_code(area) == region


@pytest.mark.parametrize("area", ["", "0", "7", "075", "07555", "1", "01", "026", "123",
                                  "abc", "0" * 30])
def test_not_area_codes(area: str) -> None:
    assert region_for_area_code(area) is None


def test_ivr_area_code_wins_over_lookup() -> None:
    result = resolve_region("13800138000", ivr_area_code="0755")
    assert (result.region, result.source, result.known, result.detail) == (
        "CN-GD", "ivr", True, "0755")
    assert result.normalised == "13800138000"
    # a withheld number with an area code keyed in the IVR
    assert resolve_region("anonymous", ivr_area_code="755").region == "CN-GD"
    # IVR input that is no area code is ignored: the lookup (or default) decides
    assert resolve_region("13800138000", ivr_area_code="99").source == "lookup"
    assert resolve_region("13800138000", ivr_area_code="").source == "lookup"
    assert resolve_region("anonymous", ivr_area_code="*").source == "default"


def test_override_wins_over_everything() -> None:
    overrides = {"13800138000": "CN-SC"}
    result = resolve_region("+86 138 0013 8000", overrides=overrides, ivr_area_code="0755")
    assert (result.region, result.source, result.known) == ("CN-SC", "override", True)
    # an override can also pin a caller to "unknown" (e.g. a test line)
    pinned = resolve_region("13800138000", overrides={"13800138000": UNKNOWN_REGION})
    assert (pinned.region, pinned.source, pinned.known) == (UNKNOWN_REGION, "override", False)
    # other numbers are unaffected; a withheld number never matches an override
    assert resolve_region("13912345678", overrides=overrides).region == "CN-JS"
    assert resolve_region("", overrides={"": "CN-SC"}).source == "default"


def test_bad_region_codes_are_rejected() -> None:
    with pytest.raises(ValueError, match="default region"):
        resolve_region("13800138000", default="GD")
    with pytest.raises(ValueError, match="region override for 13800138000"):
        resolve_region("13800138000", overrides={"13800138000": "cn-sc"})
    with pytest.raises(ValueError, match="default region"):
        RegionResolver(default="CN-XX")
    with pytest.raises(ValueError, match="'0755 1234 5678'"):
        RegionResolver(overrides={"0755 1234 5678": "Guangdong"})


def test_resolver_normalises_and_checks_its_table() -> None:
    resolver = RegionResolver("CN-GD", {"+86 138-0013-8000": "CN-SC", "0755 1234 5678": "CN-HI"})
    assert dict(resolver.overrides) == {"13800138000": "CN-SC", "075512345678": "CN-HI"}
    assert resolver.resolve("13800138000").region == "CN-SC"
    assert resolver.resolve("075512345678", ivr_area_code="010").region == "CN-HI"
    assert resolver.resolve("13912345678", ivr_area_code="010").region == "CN-BJ"
    assert resolver.resolve("anonymous").region == "CN-GD"
    with pytest.raises(ValueError, match="not a phone number"):
        RegionResolver(overrides={"anonymous": "CN-SC"})
    with pytest.raises(ValueError, match="already mapped"):
        RegionResolver(overrides={"13800138000": "CN-SC", "+8613800138000": "CN-BJ"})
    # the same number twice with the same region is fine
    RegionResolver(overrides={"13800138000": "CN-SC", "+8613800138000": "CN-SC"})


def test_region_codes() -> None:
    assert len(REGION_CODES) == 34
    assert all(is_region_code(c) for c in REGION_CODES)
    assert is_region_code(UNKNOWN_REGION)
    for bad in ("", "GD", "cn-gd", "CN-XX", "CN-GD ", "CN"):
        assert not is_region_code(bad)


@pytest.mark.parametrize(
    ("description", "region"),
    [("Shenzhen, Guangdong", "CN-GD"), ("Chengdu/Ziyang/Meishan, Sichuan", "CN-SC"),
     ("Beijing", "CN-BJ"), ("Guangzhou", "CN-GD"), ("XiAn", "CN-SN"), ("Xi'an", "CN-SN"),
     ("Huhehaote, Inner Mongolia", "CN-NM"), ("Lhasa, Xizang", "CN-XZ"),
     ("广东省深圳市", "CN-GD"), ("广西南宁市", "CN-GX"), ("内蒙古呼和浩特市", "CN-NM"),
     ("黑龙江省哈尔滨市", "CN-HL"), ("陕西省西安市", "CN-SN"), ("山西省太原市", "CN-SX"),
     ("Hong Kong", "CN-HK"), ("Macau", "CN-MO"), ("Taipei", "CN-TW")],
)
def test_descriptions(description: str, region: str) -> None:
    assert region_for_description(description) == region


@pytest.mark.parametrize("description", ["", "China", "中国", "Washington D.C.",
                                         "Fuzhou", "Suzhou", "Paris, France"])
def test_descriptions_without_a_province(description: str) -> None:
    assert region_for_description(description) is None


def test_every_chinese_description_in_the_installed_data_maps() -> None:
    """The mapping table covers the whole installed geocoder data for +86, and the English
    and Chinese descriptions of each prefix agree."""
    from phonenumbers.geodata import GEOCODE_DATA

    described = {(d["en"], d.get("zh", "")) for k, d in GEOCODE_DATA.items()
                 if k.startswith("86")}
    assert len(described) > 300
    seen: set[str] = set()
    for en, zh in described:
        region = region_for_description(en)
        assert region is not None, en
        assert not zh or region_for_description(zh) == region, (en, zh)
        seen.add(region)
    assert seen == REGION_CODES - {"CN-HK", "CN-MO", "CN-TW"}


def test_names_cover_every_code() -> None:
    for code, (en, zh) in REGION_NAMES.items():
        assert region_for_description(en) == code
        assert region_for_description(zh) == code


def test_lookups_are_cached() -> None:
    preload()
    lookup_region("13800138000")
    before = lookup_region.cache_info().hits
    assert resolve_region("+86 138 0013 8000").region == "CN-BJ"
    assert lookup_region.cache_info().hits == before + 1


number_like = st.from_regex(r"[+＋]?[0-9０-９ ()\-]{0,24}", fullmatch=True)


@settings(max_examples=300, deadline=None)
@given(raw=st.one_of(st.text(), number_like),
       ivr=st.one_of(st.none(), st.text(max_size=8), st.from_regex(r"0?\d{1,4}#?", fullmatch=True)),
       default=st.sampled_from(sorted(REGION_CODES | {UNKNOWN_REGION})))
def test_fuzz_never_raises_and_always_gives_a_region_code(raw: str, ivr: str | None,
                                                          default: str) -> None:
    result = resolve_region(raw, default=default, ivr_area_code=ivr)
    assert is_region_code(result.region)
    assert result.known == (result.source != "default")
    if result.source == "default":
        assert result.region == default
    else:
        assert result.region in REGION_CODES
    assert result.normalised.isascii()
