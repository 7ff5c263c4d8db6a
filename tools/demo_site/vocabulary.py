"""The demo sites' word lists: names, titles and paragraph vocabulary (data only)."""

from __future__ import annotations

UNIVERSITIES = (
    "Northfield University",
    "Ashbury University",
    "University of Westmere",
    "Carrow Institute of Technology",
    "Kingsbridge University",
)
SECTIONS = ("departments", "courses", "people", "news", "events")
SECTION_WEIGHTS = {"departments": 6, "courses": 34, "people": 30, "news": 20, "events": 10}
SECTION_TITLES = {
    "departments": "Academic Departments",
    "courses": "Course Catalogue",
    "people": "People Directory",
    "news": "University News",
    "events": "Events Calendar",
    "static": "University Information",
}
SECTION_BLURBS = {
    "departments": "academic department",
    "courses": "course information",
    "people": "staff and student profile",
    "news": "news story",
    "events": "event details",
    "static": "university information",
    "private": "staff intranet",
}
RELATED_HEADINGS = {
    "departments": "Departments, courses and people",
    "courses": "Related courses",
    "people": "Colleagues and department",
    "news": "More news",
    "events": "Related events",
}
OVERVIEW_HEADINGS = {"en": "Overview", "fr": "Présentation", "de": "Überblick"}
MORE_HEADINGS = {"en": "More information", "fr": "En savoir plus", "de": "Weitere Informationen"}
BROKEN_WORDS = {
    "departments": "merged",
    "courses": "discontinued",
    "people": "former-staff",
    "news": "expired",
    "events": "cancelled",
}
STATIC_PAGES = (
    ("/about/", "About {u}"),
    ("/admissions/", "Admissions"),
    ("/research/", "Research at {u}"),
    ("/contact/", "Contact Us"),
)
DEPARTMENTS_ABBR = {
    "Computer Science": "CS",
    "Mathematics": "MATH",
    "Physics": "PHYS",
    "Chemistry": "CHEM",
    "Biology": "BIO",
    "History": "HIST",
    "Philosophy": "PHIL",
    "Economics": "ECON",
    "Linguistics": "LING",
    "Music": "MUS",
    "Civil Engineering": "CIVE",
    "Mechanical Engineering": "MECH",
    "Electrical Engineering": "EE",
    "Psychology": "PSY",
    "Sociology": "SOC",
    "Political Science": "POL",
    "Geography": "GEOG",
    "Earth Sciences": "EAS",
    "Classics": "CLAS",
    "Modern Languages": "LANG",
    "Law": "LAW",
    "Medicine": "MED",
    "Nursing": "NURS",
    "Education": "EDU",
    "Architecture": "ARCH",
    "Fine Art": "ART",
    "Statistics": "STAT",
    "Astronomy": "ASTR",
    "Anthropology": "ANTH",
    "Business": "BUS",
}
DEPARTMENTS = tuple(DEPARTMENTS_ABBR)
COURSE_PREFIXES = (
    "Introduction to ",
    "Advanced ",
    "Topics in ",
    "Foundations of ",
    "Seminar in ",
    "Applied ",
    "",
)
TOPICS = (
    "Algorithms",
    "Linear Algebra",
    "Thermodynamics",
    "Organic Chemistry",
    "Cell Biology",
    "Medieval Europe",
    "Ethics",
    "Macroeconomics",
    "Phonology",
    "Music Theory",
    "Structural Analysis",
    "Fluid Mechanics",
    "Signal Processing",
    "Cognitive Psychology",
    "Urban Sociology",
    "Comparative Politics",
    "Climate Systems",
    "Roman Literature",
    "Constitutional Law",
    "Public Health",
    "Learning Theory",
    "Sustainable Design",
    "Probability",
    "Galaxies and Cosmology",
    "Machine Learning",
    "Data Visualisation",
    "Renaissance Art",
    "Quantum Mechanics",
    "Genetics",
    "Corporate Finance",
)
FIRST_NAMES = (
    "Alice", "Amara", "Ben", "Carlos", "Chen", "Clara", "David", "Elena", "Farah", "George",
    "Hannah", "Ibrahim", "Isabel", "James", "Julia", "Kenji", "Laura", "Leon", "Maria", "Mohammed",
    "Nadia", "Oliver", "Priya", "Rafael", "Sara", "Sofia", "Thomas", "Uma", "Victor", "Yuki",
)  # fmt: skip
LAST_NAMES = (
    "Anderson", "Baker", "Chowdhury", "Dubois", "Evans", "Fischer", "Garcia", "Hughes", "Ito",
    "Jensen", "Kowalski", "Lee", "Martin", "Nakamura", "Okafor", "Patel", "Quinn", "Rossi", "Smith",
    "Tanaka", "Urquhart", "Varga", "Walsh", "Xu", "Yilmaz", "Zhang", "Murphy", "Novak", "Silva",
)  # fmt: skip
ROLES = (
    "Professor",
    "Associate Professor",
    "Senior Lecturer",
    "Lecturer",
    "Research Fellow",
    "Postdoctoral Researcher",
    "PhD Student",
    "Department Administrator",
)
NEWS_SUBJECTS = ("researchers", "students", "alumni", "team", "scientists", "lecturers")
NEWS_VERBS = ("unveil", "win award for", "publish study on", "launch", "celebrate", "explore")
NEWS_OBJECTS = (
    "new quantum sensor",
    "coastal erosion project",
    "open-source teaching tools",
    "community health initiative",
    "archive of medieval letters",
    "low-carbon building design",
    "language learning app",
    "deep-sea sampling mission",
    "partnership with local schools",
    "model of urban traffic",
)
EVENT_KINDS = ("Public Lecture", "Workshop", "Open Day", "Seminar", "Concert", "Conference")
DOCUMENTS = (
    "Undergraduate Prospectus",
    "Annual Report",
    "Course Handbook",
    "Research Strategy",
    "Exam Timetable",
    "Fees Schedule",
)
IMAGES = ("Campus Map", "Library Photo", "Laboratory Photo", "Graduation Ceremony", "Logo")
APPS = ("Timetable Viewer", "Room Booking", "Student Portal", "Exam Results", "Library Search")
PRIVATE_DOCS = ("Staff Handbook", "Committee Minutes", "Internal Budget", "Payroll Calendar")
PARTNERS = ("Exchange Programme", "Research Consortium", "Alumni Network", "Scholarships")
WORDS = {
    "en": (
        "the", "university", "research", "students", "study", "programme", "department", "and",
        "of", "in", "with", "new", "course", "learning", "teaching", "faculty", "science",
        "community", "project", "campus", "modules", "seminar", "laboratory", "for", "our",
        "knowledge", "analysis", "methods", "theory", "practice", "international", "support",
        "library", "career", "degree", "graduate", "undergraduate", "collaboration", "innovation",
        "society", "data", "history", "culture", "future", "skills", "experience", "opportunity",
        "academic", "public", "across", "through", "develop", "explore", "discover", "apply",
    ),
    "fr": (
        "le", "la", "les", "université", "recherche", "étudiants", "cours", "programme", "et",
        "de", "des", "avec", "nouveau", "enseignement", "faculté", "sciences", "communauté",
        "projet", "campus", "séminaire", "laboratoire", "pour", "notre", "connaissance",
        "analyse", "méthodes", "théorie", "pratique", "international", "bibliothèque",
    ),
    "de": (
        "die", "der", "das", "universität", "forschung", "studierende", "kurs", "programm", "und",
        "von", "mit", "neue", "lehre", "fakultät", "wissenschaft", "gemeinschaft", "projekt",
        "campus", "seminar", "labor", "für", "unsere", "wissen", "analyse", "methoden",
        "theorie", "praxis", "international", "bibliothek", "zukunft",
    ),
}  # fmt: skip

# The link-dense documentation site (profile "dense").
DOC_PROJECTS = ("Toolkit", "Pipewright", "Quillon", "Stratus", "Ferrule")
DOC_SECTIONS = (
    ("getting-started", "Getting started"),
    ("tutorial", "Tutorial"),
    ("guide", "User guide"),
    ("howto", "How-to guides"),
    ("reference", "Reference"),
    ("api", "API"),
    ("internals", "Internals"),
    ("deployment", "Deployment"),
    ("faq", "Frequently asked questions"),
    ("release-notes", "Release notes"),
)
DOC_VERBS = (
    "Configuring", "Deploying", "Understanding", "Extending", "Testing", "Debugging", "Scaling",
    "Securing", "Migrating", "Monitoring", "Writing", "Tuning", "Packaging", "Profiling",
)  # fmt: skip
DOC_NOUNS = (
    "the scheduler", "middleware", "pipelines", "signals", "settings", "the downloader",
    "item loaders", "selectors", "feeds", "the engine", "extensions", "contracts", "caching",
    "retries", "proxies", "logging", "statistics", "cookies", "redirects", "compression",
    "request fingerprints", "the frontier", "checkpoints", "spiders", "link extractors",
)  # fmt: skip
DOC_HEADINGS = (
    "Overview", "Installation", "Quick example", "Options", "How it works", "Limitations",
    "Examples", "Troubleshooting", "See also", "Parameters", "Return value", "Notes",
)  # fmt: skip
DOC_SEARCH_TERMS = ("install", "settings", "proxy", "retry", "timeout", "cache", "depth", "robots")
DOC_STATIC_PAGES = (
    ("/search/", "Search"),
    ("/genindex/", "General index"),
    ("/sitemap/", "Site map"),
    ("/about/", "About these documents"),
    ("/license/", "License"),
    ("/changelog/", "Changelog"),
)
