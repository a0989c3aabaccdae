#!/usr/bin/env python3
"""Writes the lab's MMDB (country + ASN, GeoLite2 field names) with mmdb-writer.

usage: write_mmdb.py OUT.mmdb
"""
import sys

from mmdb_writer import MMDBWriter
from netaddr import IPSet

w = MMDBWriter(ip_version=4, database_type="scanscope-lab-geo-asn", languages=["en"],
               description="scanscope test database")
w.insert_network(IPSet(["203.0.113.0/24"]), {
    "country": {"iso_code": "NL"},
    "autonomous_system_number": 64500,
    "autonomous_system_organization": "Lab Scanning AS",
})
w.insert_network(IPSet(["162.142.125.0/24"]), {
    "country": {"iso_code": "US"},
    "autonomous_system_number": 398324,
    "autonomous_system_organization": "CENSYS-ARIN-01",
})
w.to_db_file(sys.argv[1])
